package engine

import (
	"gopkg.in/yaml.v3"
)

// The types below mirror schemas/pipeline.schema.json and
// schemas/connections.schema.json field for field; schema_test.go fails
// when they drift apart.

// PipelineConfig is one pipeline file as written.
type PipelineConfig struct {
	Description string         `yaml:"description"`
	Source      SourceConfig   `yaml:"source"`
	Filter      string         `yaml:"filter"`
	Steps       []StepConfig   `yaml:"steps"`
	Target      *CallConfig    `yaml:"target"`
	Respond     *RespondConfig `yaml:"respond"`
	Delivery    DeliveryConfig `yaml:"delivery"`
}

// SourceConfig says where events come from.
type SourceConfig struct {
	Type      string       `yaml:"type"`
	Path      StringList   `yaml:"path"`
	Method    string       `yaml:"method"`
	Auth      *InboundAuth `yaml:"auth"`
	MaxBody   string       `yaml:"max_body"`
	Inbox     string       `yaml:"inbox"`
	Delimiter string       `yaml:"delimiter"`
}

// InboundAuth is what callers of an HTTP source must present.
type InboundAuth struct {
	Bearer string     `yaml:"bearer"`
	Basic  *BasicAuth `yaml:"basic"`
	HMAC   *HMACAuth  `yaml:"hmac"`
}

// BasicAuth is a user name and password.
type BasicAuth struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// UsernameInPath names a path placeholder that, on the paths that
	// have it, must hold the user name too: SessionM Core's own paths
	// (/priv/v1/apps/{api_key}/...) carry the api key that is also the
	// Basic user name (sessionm.md §1, C), and SessionM refuses a path
	// whose key is another app's.
	UsernameInPath string `yaml:"username_in_path"`
}

// HMACAuth is a body signature in a header.
type HMACAuth struct {
	Header    string `yaml:"header"`
	Secret    string `yaml:"secret"`
	Algorithm string `yaml:"algorithm"`
	Encoding  string `yaml:"encoding"`
	Prefix    string `yaml:"prefix"`
}

// CallConfig is a request to a connection: a named endpoint or a raw
// method + path.
type CallConfig struct {
	Connection   string            `yaml:"connection"`
	Endpoint     string            `yaml:"endpoint"`
	Method       string            `yaml:"method"`
	Path         string            `yaml:"path"`
	Params       map[string]string `yaml:"params"`
	Query        map[string]string `yaml:"query"`
	Headers      map[string]string `yaml:"headers"`
	Body         yaml.Node         `yaml:"body"`
	BodyTemplate string            `yaml:"body_template"`
}

// StepConfig is a lookup (a call) or a computed value (expr).
type StepConfig struct {
	Name       string `yaml:"name"`
	Expr       string `yaml:"expr"`
	IfNotFound string `yaml:"if_not_found"`
	CallConfig `yaml:",inline"`
}

// RespondConfig is the answer of a synchronous pipeline.
type RespondConfig struct {
	Status       int               `yaml:"status"`
	Headers      map[string]string `yaml:"headers"`
	Body         yaml.Node         `yaml:"body"`
	BodyTemplate string            `yaml:"body_template"`
	Deadline     string            `yaml:"deadline"`
	Cache        *CacheConfig      `yaml:"cache"`
}

// CacheConfig keeps a synchronous pipeline's answers for a while.
type CacheConfig struct {
	Key        string `yaml:"key"`
	TTL        string `yaml:"ttl"`
	Stale      string `yaml:"stale"`
	MaxLookups int    `yaml:"max_lookups"`
	RetryWait  string `yaml:"retry_wait"`
	Until      string `yaml:"until"`
}

// DeliveryConfig tunes how target requests are delivered.
type DeliveryConfig struct {
	Attempts    int           `yaml:"attempts"`
	Backoff     BackoffConfig `yaml:"backoff"`
	OrderBy     string        `yaml:"order_by"`
	Concurrency int           `yaml:"concurrency"`
	Linger      string        `yaml:"linger"`
	Timeout     string        `yaml:"timeout"`
}

// BackoffConfig bounds the wait between attempts.
type BackoffConfig struct {
	Initial string `yaml:"initial"`
	Max     string `yaml:"max"`
}

// ConnectionsConfig is connections.yaml. Each connection's settings depend
// on its type, so they are kept as strings and checked against the
// connector's field list.
type ConnectionsConfig struct {
	Connections map[string]map[string]string `yaml:"connections"`
}

// Settings every connection type has, besides its own fields.
var commonConnectionFields = []string{"type", "base_url", "timeout", "rate_limit", allowPlainHTTP}

// allowPlainHTTP lets a connection to an HTTPS-only service use an
// http:// base_url on another host: an emulator in another container.
const allowPlainHTTP = "allow_plain_http"

// StringList is a string or a list of strings.
type StringList []string

// UnmarshalYAML accepts both `path: /a` and `path: [/a, /b]`.
func (s *StringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = StringList{n.Value}
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return err
	}
	*s = list
	return nil
}
