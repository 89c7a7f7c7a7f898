// Package spec describes what connectors offer the engine: connection types
// with their fields and endpoints, and source types. Connectors fill these
// descriptions in their own folders; the validator, the builder and the
// JSON Schemas are all checked against them.
package spec

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Field is one setting of a connection in connections.yaml.
type Field struct {
	Name     string
	Required bool
	Secret   bool // never printed; must come from ${secret:...} or ${env:...}
	Doc      string
	// Check, when set, says what is wrong with a value given for the
	// field, for a message at its place in connections.yaml.
	Check func(value string) error
}

// Auth is what a connection adds to every request: one header whose value
// is Scheme + " " + Credential. The credential is masked wherever printed.
type Auth struct {
	Header     string
	Scheme     string
	Credential string
}

// ConnectionType is a kind of connection (sessionm_core, braze, http).
type ConnectionType struct {
	Name      string
	Doc       string
	Fields    []Field
	Endpoints []Endpoint
	// Authorize computes the auth header from a resolved connection; nil
	// when the type adds none.
	Authorize func(c *Connection) (Auth, error)
	// ResponseError reads a response the way this API reports failures
	// (SessionM: 200 with "status":"error"; Braze: a non-2xx with
	// "message"); nil means the response is a success.
	ResponseError func(status int, body []byte) error
	// ResponseErrorFor, when set, builds ResponseError for one connection
	// from its settings (SessionM's retry_error_codes); ResponseError is
	// then the reading with every setting at its default.
	ResponseErrorFor func(c *Connection) func(status int, body []byte) error
	// RateLimits are the peer's documented limits per pool; endpoints name
	// their pool. Connections of this type are paced to stay under them.
	RateLimits map[string]RateLimit
	// HTTPSOnly marks a service that answers only over HTTPS (SessionM,
	// Braze's REST hosts). An http:// base_url for it is then a typo or a
	// copied emulator URL that would send the credentials in clear, so
	// the loader refuses one unless it names this machine or the
	// connection opts in with allow_plain_http.
	HTTPSOnly bool
}

// RateLimit is "Requests per Window", as APIs document their limits.
type RateLimit struct {
	Requests int
	Window   time.Duration
	// Isolated marks a pool whose window is a narrower one inside the
	// account's (Braze's broadcasts): a 429 to it holds back this pool
	// only, where any other 429 pauses the whole connection.
	Isolated bool
}

// Field returns the field called name.
func (t *ConnectionType) Field(name string) (Field, bool) {
	for _, f := range t.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// Endpoint returns the endpoint called name.
func (t *ConnectionType) Endpoint(name string) (*Endpoint, bool) {
	for i := range t.Endpoints {
		if t.Endpoints[i].Name == name {
			return &t.Endpoints[i], true
		}
	}
	return nil, false
}

// EndpointNames lists the endpoint names, for messages and schemas.
func (t *ConnectionType) EndpointNames() []string {
	names := make([]string, len(t.Endpoints))
	for i, e := range t.Endpoints {
		names[i] = e.Name
	}
	return names
}

// Endpoint is a named operation of a connection type.
type Endpoint struct {
	Name        string
	Doc         string
	Method      string
	Path        string // relative to base_url; {name} placeholders
	ContentType string // of the request body; "" for none
	// FromConnection fills path placeholders from connection fields
	// (SessionM Core's {api_key}).
	FromConnection map[string]string
	// BodyDefaults fills body fields from connection fields when the
	// pipeline leaves them out (Connect's retailer_id).
	BodyDefaults map[string]string
	// Body is the shape of the request body; nil when it has none.
	Body *Shape
	// MaxBatch is how many items one request may carry (Braze
	// recipients); 0 when the endpoint does not batch.
	MaxBatch int
	// MaxTotal, when set, is how many items all the lists of one request
	// may carry together on connection c; 0 means MaxBatch per list is
	// the only bound.
	MaxTotal func(c *Connection) int
	// MaxTotalField names the connection field that sets MaxTotal, for
	// messages.
	MaxTotalField string
	// AppliedInPart, when set, lists the body lists whose objects the
	// peer on connection c applies in part when its answer names them in
	// an error (Braze /users/track attributes): it drops the fields at
	// fault and takes the rest.
	AppliedInPart func(c *Connection) []string
	// ReadOnly: the endpoint only reads (a profile, a wallet), so asking
	// again changes nothing at the peer. A 2xx of it that holds no JSON is
	// then a failed lookup, worth another try; from an endpoint that
	// changes something the peer acted, and it is not asked again.
	ReadOnly bool
	// CheckAnswer, when set, says what is wrong with a 2xx JSON answer
	// that is not what the endpoint answers ("" when it is): for a
	// ReadOnly endpoint that is a failed lookup, as a body that is not
	// JSON is.
	CheckAnswer func(v any) string
	// RatePool names the connection type's RateLimits entry this endpoint
	// counts against; "" for none.
	RatePool string
	// RatePoolOf, when set, names the pool from the request's body, for
	// an API whose limit depends on what a request asks for (a Braze
	// broadcast has a limit of its own); "" keeps RatePool. It is called
	// for every request, so it only looks, never allocates.
	RatePoolOf func(body map[string]any) string
}

// Pool names the RateLimits entry a request with this body counts
// against; "" for none, and for a nil endpoint (a raw call). The pool
// follows the body, not the endpoint alone, so it is chosen when the
// request is sent, after any batching has built its final body.
func (e *Endpoint) Pool(body any) string {
	if e == nil {
		return ""
	}
	if e.RatePoolOf != nil {
		if m, ok := body.(map[string]any); ok {
			if p := e.RatePoolOf(m); p != "" {
				return p
			}
		}
	}
	return e.RatePool
}

// Placeholders lists the {names} in a path, in order.
func Placeholders(path string) []string {
	var out []string
	for {
		i := strings.IndexByte(path, '{')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(path[i:], '}')
		if j < 0 {
			return out
		}
		out = append(out, path[i+1:i+j])
		path = path[i+j+1:]
	}
}

// PathParams lists the placeholders the pipeline must fill (those not
// taken from the connection).
func (e *Endpoint) PathParams() []string {
	var out []string
	for _, p := range Placeholders(e.Path) {
		if _, ok := e.FromConnection[p]; !ok {
			out = append(out, p)
		}
	}
	return out
}

// Connection is a resolved entry of connections.yaml.
type Connection struct {
	Name    string
	File    string // the connections file that defines it: folders may each have a "braze"
	Type    *ConnectionType
	BaseURL *url.URL
	Timeout time.Duration
	// RateLimit, from connections.yaml, replaces the type's documented
	// limits for every request to this connection.
	RateLimit *RateLimit
	Fields    map[string]string // type-specific fields, secrets resolved
}

// Place is where a connection sends: its type and base URL, written one
// way (scheme and host in lower case, no trailing dot or default port, no
// trailing slash), so that https://API.example.com:443/ and
// https://api.example.com are one place (a review: two governors for one
// host).
func (c *Connection) Place() string {
	place := c.Type.Name + "\x00"
	u := c.BaseURL
	if u == nil {
		return place
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if strings.Contains(host, ":") {
		host = "[" + host + "]" // IPv6
	}
	if port := u.Port(); port != "" && !(scheme == "https" && port == "443") && !(scheme == "http" && port == "80") {
		host += ":" + port
	}
	return place + scheme + "://" + host + strings.TrimSuffix(u.EscapedPath(), "/")
}

// Account tells apart the accounts connections reach: the place and the
// credentials sent, not the other settings (retry_error_codes, a
// retailer_id). A digest, kept in memory only (PauseKey is what is
// stored).
func (c *Connection) Account() string {
	h := sha256.New()
	io.WriteString(h, c.Place())
	if auth, err := c.Auth(); err == nil {
		fmt.Fprintf(h, "\x00%s\x00%s\x00%s", auth.Header, auth.Scheme, auth.Credential)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// PauseKey is what a connection's pause is stored under in the inbox: its
// name and place, not its account. A digest of the credentials, stored,
// let anyone who reads the data folder test guesses of a password with one
// hash each (a review). So a pause stored by one connection is restored
// to every connection of that name and place, whatever key it sends: a
// rotated key of one Braze workspace keeps the workspace's pause.
func (c *Connection) PauseKey() string { return c.Name + "\x00" + c.Place() }

// GovernorKey is what the engine's rate limits and pauses belong to: a
// connection's name and account. Two folders' "braze" with one base URL
// and API key are one Braze workspace, whose limits both count against
// (braze.md §1: limits are per workspace); keyed by file and name, the
// two went at twice its limit, one ignored the other's 429s, and a pause
// stored under the folder's path as typed was lost at a restart with the
// path written otherwise (QA runs). Two connections of one file with
// their own names keep their own limits (a slow one for a bulk pipeline).
func (c *Connection) GovernorKey() string { return c.Name + "\x00" + c.Account() }

// Public returns the fields a template may read: everything but secrets.
func (c *Connection) Public() map[string]any {
	out := map[string]any{"name": c.Name, "type": c.Type.Name, "base_url": c.BaseURL.String()}
	for _, f := range c.Type.Fields {
		if !f.Secret {
			out[f.Name] = c.Fields[f.Name]
		}
	}
	return out
}

// SourceKind groups source types by how events arrive.
type SourceKind int

const (
	HTTPSource SourceKind = iota
	CSVSource
)

// SourceType is a kind of source (braze_webhook, sessionm_event, http, csv).
type SourceType struct {
	Name          string
	Kind          SourceKind
	Doc           string
	DefaultMethod string // HTTP sources
	// Event is the shape of the events this source produces, used to check
	// the names templates read; nil when any shape is possible.
	Event *Shape
}

// EventReads is what a pipeline reads of its events' fields, as far as
// its file says by name (event.user_id). A CSV row's fields are its
// columns: the header row is checked against it before a row is sent.
type EventReads struct {
	// Whole: some template or expression reads the event as a whole
	// ({{ event | json }}), or a field by a name known only per event
	// (event[key]), so every field may be read.
	Whole bool
	// Fields are the fields read by name, sorted.
	Fields []string
	// Needed are those of Fields that some template or expression reads
	// without allowing for them missing (see FieldNeed), sorted by name.
	Needed []FieldNeed
}

// FieldNeed is a field a pipeline reads where it needs it: in a template
// or expression that neither gives it a default (| default: in Liquid,
// ?? in expr) nor tests for it (a Liquid if, unless or case; an expr
// comparison with nil).
type FieldNeed struct {
	Name   string
	Places []string // where in the file, in file order: filter, target.params.external_id
}

// Catalog is every connection and source type the engine knows.
type Catalog struct {
	Connections map[string]*ConnectionType
	Sources     map[string]*SourceType
}

// NewCatalog indexes the given types; a duplicate name is a programming
// error and panics at start-up.
func NewCatalog(conns []*ConnectionType, sources []*SourceType) *Catalog {
	c := &Catalog{Connections: map[string]*ConnectionType{}, Sources: map[string]*SourceType{}}
	for _, t := range conns {
		if _, dup := c.Connections[t.Name]; dup {
			panic(fmt.Sprintf("connection type %q registered twice", t.Name))
		}
		c.Connections[t.Name] = t
	}
	for _, s := range sources {
		if _, dup := c.Sources[s.Name]; dup {
			panic(fmt.Sprintf("source type %q registered twice", s.Name))
		}
		c.Sources[s.Name] = s
	}
	return c
}

// ConnectionTypeNames lists the connection type names, sorted.
func (c *Catalog) ConnectionTypeNames() []string { return slices.Sorted(maps.Keys(c.Connections)) }

// SourceTypeNames lists the source type names, sorted.
func (c *Catalog) SourceTypeNames() []string { return slices.Sorted(maps.Keys(c.Sources)) }

// Methods are the HTTP methods a raw call may use.
var Methods = []string{"GET", "POST", "PUT", "PATCH", "DELETE"}

// BasicAuth is HTTP Basic auth for user and password.
func BasicAuth(user, password string) Auth {
	return Auth{Header: "Authorization", Scheme: "Basic", Credential: base64.StdEncoding.EncodeToString([]byte(user + ":" + password))}
}

// BasicToken is the token of a Basic authorization given whole, with or
// without its scheme ("Basic dXNlcjpwYXNz" or "dXNlcjpwYXNz"), as SessionM
// hands out Connect's.
func BasicToken(s string) string {
	s = strings.TrimSpace(s)
	if scheme, rest, ok := strings.Cut(s, " "); ok && strings.EqualFold(scheme, "Basic") {
		return strings.TrimSpace(rest)
	}
	return s
}

// Excerpt shortens a response body for messages and dead letters.
func Excerpt(body []byte) string {
	const max = 300
	s := strings.TrimSpace(string(body))
	if s == "" {
		return "(empty body)"
	}
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return s[:cut] + "..."
	}
	return s
}

// ResponseReader is how the connection reads answers (nil: every answer is
// a success). ResponseErrorFor may parse settings: call this once per
// connection, not per answer.
func (c *Connection) ResponseReader() func(status int, body []byte) error {
	if c.Type.ResponseErrorFor != nil {
		return c.Type.ResponseErrorFor(c)
	}
	return c.Type.ResponseError
}

// Coded marks err, a connection's reading of an answer, with the error
// code the answer gave (SessionM's errors.code): an outside caller may be
// told the code where the peer's own words, which can quote the request
// and the API key in its path, stay in the engine.
func Coded(code string, err error) error { return codedError{code, err} }

type codedError struct {
	code string
	error
}

func (e codedError) Unwrap() error { return e.error }

var plainCode = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// CodeOf is the code Coded marked err with, "" when there is none or it
// is not a plain word (letters, digits, "_", "." and "-").
func CodeOf(err error) string {
	var c codedError
	if errors.As(err, &c) && plainCode.MatchString(c.code) {
		return c.code
	}
	return ""
}

// Retryable marks err, a connection's reading of an answer, as worth
// trying again whatever the answer's HTTP status (a SessionM error code
// listed in retry_error_codes, even under HTTP 200).
func Retryable(err error) error { return retryableError{err} }

type retryableError struct{ error }

func (e retryableError) Unwrap() error { return e.error }

// IsRetryable says whether err, or an error it wraps, was marked by
// Retryable.
func IsRetryable(err error) bool { return errors.As(err, new(retryableError)) }

// NotFound marks err, a connection's reading of an answer, as the peer
// saying that what was asked for does not exist, whatever the answer's
// HTTP status (SessionM's user_not_found under HTTP 200).
func NotFound(err error) error { return notFoundError{err} }

type notFoundError struct{ error }

func (e notFoundError) Unwrap() error { return e.error }

// IsNotFound says whether err, or an error it wraps, was marked by
// NotFound.
func IsNotFound(err error) bool { return errors.As(err, new(notFoundError)) }

// Auth returns the header the connection adds to every request (empty when
// its type adds none).
func (c *Connection) Auth() (Auth, error) {
	if c.Type.Authorize == nil {
		return Auth{}, nil
	}
	return c.Type.Authorize(c)
}
