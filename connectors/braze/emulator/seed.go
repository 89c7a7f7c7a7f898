package emulator

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/loyalty-connector/engine/engine/yamlpos"
	"github.com/loyalty-connector/engine/internal/ids"
)

// Seed is the emulator's starting state, read from YAML
// (examples/sandbox/braze.yaml).
type Seed struct {
	Settings  Settings     `yaml:"settings"`
	Users     []SeedUser   `yaml:"users"`
	Campaigns []Campaign   `yaml:"campaigns"`
	Canvases  []Canvas     `yaml:"canvases"`
	Segments  []SegmentDef `yaml:"segments"`
}

// Settings are the workspace-wide switches of the seed.
type Settings struct {
	// APIKeys are the REST API keys the workspace accepts, each with its
	// permissions (braze.md §1 Authentication).
	APIKeys []APIKey `yaml:"api_keys"`
	// Limits override the documented default rate limits (braze.md §1).
	Limits SeedLimits `yaml:"limits"`
	// GeneratedUsers adds that many synthetic users, external ids
	// load-000000, load-000001, ... (index from 0), for load tests. They
	// cost no memory until a request writes to them.
	GeneratedUsers int `yaml:"generated_users"`
	// MaxArrayLength caps array custom attributes (braze.md §3: 25 by
	// default, up to 100); 0 means 25. Longer arrays are truncated
	// (A: a set keeps the first elements, an "add" drops the oldest).
	MaxArrayLength int `yaml:"max_array_length"`

	// The assumptions below are also fields of Options, which win when
	// they are not zero.

	// CampaignSuccessStatus is the status of a successful
	// /campaigns/trigger/send, 200-299; 0 means 201 (A: braze.md §1).
	CampaignSuccessStatus int `yaml:"campaign_success_status"`
	// ContentTypeStatus answers a request whose Content-Type is not
	// application/json: a 4xx status, or -1 to accept any type; 0 means
	// 400 (A: braze.md §1).
	ContentTypeStatus int `yaml:"content_type_status"`
	// PropertiesMaxBytes caps trigger_properties and context objects as
	// compact JSON; 0 means 51,200 (braze.md §2 "50 KB"; A: KB = 1,024).
	PropertiesMaxBytes int `yaml:"properties_max_bytes"`
	// MaxBody is the request body limit in bytes; 0 means 1 MiB (A:
	// braze.md §2, no documented body limit).
	MaxBody int64 `yaml:"max_body"`
	// RetryAfter puts Retry-After on the 429s of the limits; missing
	// means true (A: braze.md §1 documents only x-ratelimit-*; see
	// Options.OmitRetryAfter).
	RetryAfter *bool `yaml:"retry_after"`
}

// APIKey is one REST API key and what it may call.
type APIKey struct {
	Key         string   `yaml:"key"`
	Name        string   `yaml:"name"`
	Permissions []string `yaml:"permissions"`
}

// SeedLimits are the rate limits as the seed writes them; a missing one
// keeps the documented default.
type SeedLimits struct {
	Trigger    *Limit `yaml:"trigger"`
	Broadcast  *Limit `yaml:"broadcast"`
	UsersTrack *Limit `yaml:"users_track"`
}

// SeedUser is a user profile of the seed. Attributes use the names of
// /users/track (first_name, email, home_city, dob, ...); any other name is
// a custom attribute.
type SeedUser struct {
	ExternalID  string         `yaml:"external_id"`
	BrazeID     string         `yaml:"braze_id"`
	UserAliases []Alias        `yaml:"user_aliases"`
	Attributes  map[string]any `yaml:"attributes"`
}

// Alias is a Braze user alias.
type Alias struct {
	AliasName  string `yaml:"alias_name" json:"alias_name"`
	AliasLabel string `yaml:"alias_label" json:"alias_label"`
}

// Campaign is an API-triggered campaign.
type Campaign struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	// Status is active (the default), paused, stopped or archived. A
	// campaign that is not active accepts the trigger with a notice and
	// delivers nothing (A: braze.md §2 documents this for Canvases only).
	Status string `yaml:"status"`
	// Segment (name or id) is the audience: a broadcast sends to it and
	// recipients outside it receive nothing (braze.md §2). Empty means all
	// users (A).
	Segment string `yaml:"segment"`
}

// Canvas is an API-triggered Canvas.
type Canvas struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	// Status is active (the default), paused or archived; a paused or
	// archived Canvas answers with a notice and does not send (braze.md §2).
	Status  string `yaml:"status"`
	Segment string `yaml:"segment"`
}

// SegmentDef is a seeded segment: listed users, or every user.
type SegmentDef struct {
	ID          string   `yaml:"id"`
	Name        string   `yaml:"name"`
	ExternalIDs []string `yaml:"external_ids"`
	BrazeIDs    []string `yaml:"braze_ids"`
	AllUsers    bool     `yaml:"all_users"`
}

// ReadSeed reads and checks a seed file. Unknown keys and wrong kinds of
// values are errors that name the file and line.
func ReadSeed(path string) (Seed, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return Seed{}, fmt.Errorf("braze seed: %w", err)
	}
	return ParseSeed(path, src)
}

// ParseSeed reads a seed from memory (an embedded copy, for instance);
// name is the file name its errors show. Syntax errors and the lines of
// seed problems come from engine/yamlpos, as for the SessionM seed; the
// decoder's own errors (unknown keys, wrong kinds of values) are
// rewritten by yamlError.
func ParseSeed(name string, src []byte) (Seed, error) {
	doc, err := yamlpos.Parse(name, src)
	if err != nil {
		var ye *yamlpos.Error
		if errors.As(err, &ye) {
			return Seed{}, fmt.Errorf("%s:%d: %s", name, ye.Line, ye.Message)
		}
		return Seed{}, fmt.Errorf("%s: %w", name, err)
	}
	var seed Seed
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&seed); err != nil {
		if errors.Is(err, io.EOF) {
			return Seed{}, fmt.Errorf("%s: the seed file is empty; it needs at least settings.api_keys", name)
		}
		return Seed{}, yamlError(name, err)
	}
	if err := seed.validate(); err != nil {
		var se *seedError
		if errors.As(err, &se) {
			// the key's line, or that of the nearest ancestor the file has
			return Seed{}, fmt.Errorf("%s:%d: %s", name, doc.KeyNode(se.path).Line, se.Error())
		}
		return Seed{}, fmt.Errorf("%s: %w", name, err)
	}
	return seed, nil
}

// yamlError rewrites the YAML decoder's type errors as file:line messages
// without Go type names.
func yamlError(path string, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		line, msg := yamlpos.SplitLine(err.Error())
		if line != "" {
			return fmt.Errorf("%s:%s: %s", path, line, msg)
		}
		return fmt.Errorf("%s: %s", path, strings.TrimPrefix(msg, "yaml: "))
	}
	var parts []string
	for _, e := range te.Errors {
		line, msg := yamlpos.TypeProblem(e)
		if line != "" {
			parts = append(parts, fmt.Sprintf("%s:%s: %s", path, line, msg))
		} else {
			parts = append(parts, fmt.Sprintf("%s: %s", path, msg))
		}
	}
	return errors.New(strings.Join(parts, "\n"))
}

// seedError is a problem with one place of the seed, so ReadSeed can name
// its line.
type seedError struct {
	path yamlpos.Path // keys and indexes from the document root
	msg  string
}

func (e *seedError) Error() string { return e.path.String() + ": " + e.msg }

func serr(msg string, path ...any) error { return &seedError{path: path, msg: msg} }

// knownPermissions are Braze REST key permissions (braze.md §1); a seed
// naming another one is most likely a typo.
var knownPermissions = map[string]bool{
	"campaigns.trigger.send": true, "canvas.trigger.send": true, "users.track": true,
	"users.export.segment": true, "users.export.ids": true, "messages.send": true,
	"users.delete": true, "users.alias.new": true, "users.alias.update": true,
	"users.identify": true, "users.merge": true, "sends.id.create": true,
	"campaigns.list": true, "canvas.list": true, "segments.list": true,
	"subscription.status.set": true, "subscription.status.get": true,
}

// validate checks the seed for what New cannot build on: missing or
// duplicate ids, dangling segment references, bad attribute values.
func (s *Seed) validate() error {
	if len(s.Settings.APIKeys) == 0 {
		return serr("at least one API key is needed", "settings", "api_keys")
	}
	keys := map[string]bool{}
	for i, k := range s.Settings.APIKeys {
		switch {
		case strings.TrimSpace(k.Key) == "":
			return serr("key is empty", "settings", "api_keys", i, "key")
		case k.Key != strings.TrimSpace(k.Key) || strings.ContainsAny(k.Key, "\"' "):
			return serr("key must not contain quotes or spaces", "settings", "api_keys", i, "key")
		case keys[k.Key]:
			return serr(fmt.Sprintf("key %q is listed twice", k.Key), "settings", "api_keys", i, "key")
		}
		keys[k.Key] = true
		for j, p := range k.Permissions {
			if !knownPermissions[p] {
				return serr(fmt.Sprintf("unknown permission %q; known: campaigns.trigger.send, canvas.trigger.send, users.track, users.export.segment, messages.send, ...", p),
					"settings", "api_keys", i, "permissions", j)
			}
		}
	}
	for name, l := range map[string]*Limit{"trigger": s.Settings.Limits.Trigger, "broadcast": s.Settings.Limits.Broadcast, "users_track": s.Settings.Limits.UsersTrack} {
		if l == nil {
			continue
		}
		if l.Requests <= 0 {
			return serr("requests must be at least 1 (set a large number to make the limit irrelevant)", "settings", "limits", name, "requests")
		}
		if l.Window <= 0 {
			return serr("window must be a positive duration such as 1h, 1m or 3s", "settings", "limits", name, "window")
		}
	}
	if s.Settings.GeneratedUsers < 0 || s.Settings.GeneratedUsers > 10_000_000 {
		return serr("must be between 0 and 10000000", "settings", "generated_users")
	}
	if m := s.Settings.MaxArrayLength; m < 0 || m > 100 {
		return serr("must be between 1 and 100 (0 means the default, 25)", "settings", "max_array_length")
	}
	if c := s.Settings.CampaignSuccessStatus; c != 0 && (c < 200 || c > 299) {
		return serr("must be a success status from 200 to 299 (0 means the default, 201)", "settings", "campaign_success_status")
	}
	if c := s.Settings.ContentTypeStatus; c != 0 && c != -1 && (c < 400 || c > 499) {
		return serr(fmt.Sprintf("must be a 4xx status such as %d, or -1 to accept any Content-Type (0 means the default, 400)", http.StatusUnsupportedMediaType), "settings", "content_type_status")
	}
	if s.Settings.PropertiesMaxBytes < 0 {
		return serr("must be a number of bytes, 0 or more (0 means the default, 51200)", "settings", "properties_max_bytes")
	}
	if s.Settings.MaxBody < 0 {
		return serr("must be a number of bytes, 0 or more (0 means the default, 1 MiB)", "settings", "max_body")
	}

	ext, braze, alias := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for i, u := range s.Users {
		if u.ExternalID == "" && u.BrazeID == "" && len(u.UserAliases) == 0 {
			return serr("a user needs an external_id, a braze_id or a user alias", "users", i)
		}
		if u.ExternalID != "" {
			if ext[u.ExternalID] {
				return serr(fmt.Sprintf("external_id %q is used twice", u.ExternalID), "users", i, "external_id")
			}
			if _, ok := ids.ParseGeneratedExternalID(u.ExternalID, s.Settings.GeneratedUsers); ok {
				return serr(fmt.Sprintf("external_id %q collides with a generated user", u.ExternalID), "users", i, "external_id")
			}
			ext[u.ExternalID] = true
		}
		if u.BrazeID != "" {
			if braze[u.BrazeID] {
				return serr(fmt.Sprintf("braze_id %q is used twice", u.BrazeID), "users", i, "braze_id")
			}
			if _, ok := ids.ParseGeneratedBrazeID(u.BrazeID, s.Settings.GeneratedUsers); ok || strings.HasPrefix(u.BrazeID, createdBrazePrefix) {
				return serr(fmt.Sprintf("braze_id %q collides with the ids the emulator makes up", u.BrazeID), "users", i, "braze_id")
			}
			braze[u.BrazeID] = true
		}
		for j, a := range u.UserAliases {
			if a.AliasName == "" || a.AliasLabel == "" {
				return serr("an alias needs alias_name and alias_label", "users", i, "user_aliases", j)
			}
			k := aliasKey(a)
			if alias[k] {
				return serr(fmt.Sprintf("alias %s is used twice", k), "users", i, "user_aliases", j)
			}
			alias[k] = true
		}
		for name, v := range u.Attributes {
			if reservedAttr[name] {
				return serr(fmt.Sprintf("%q is an identifier, not an attribute; put it next to attributes", name), "users", i, "attributes", name)
			}
			if _, err := parseAttr(name, normalizeYAML(v)); err != "" {
				return serr(err, "users", i, "attributes", name)
			}
		}
	}

	segs := map[string]bool{}
	for i, sg := range s.Segments {
		if sg.ID == "" || sg.Name == "" {
			return serr("a segment needs an id and a name", "segments", i)
		}
		if segs[sg.ID] || segs[sg.Name] {
			return serr(fmt.Sprintf("segment %q is defined twice (ids and names share one namespace)", sg.Name), "segments", i)
		}
		segs[sg.ID], segs[sg.Name] = true, true
		if sg.AllUsers && (len(sg.ExternalIDs) > 0 || len(sg.BrazeIDs) > 0) {
			return serr("all_users cannot be combined with external_ids or braze_ids", "segments", i, "all_users")
		}
		for j, id := range sg.ExternalIDs {
			if _, ok := ids.ParseGeneratedExternalID(id, s.Settings.GeneratedUsers); !ext[id] && !ok {
				return serr(fmt.Sprintf("no user has external_id %q", id), "segments", i, "external_ids", j)
			}
		}
		for j, id := range sg.BrazeIDs {
			if _, ok := ids.ParseGeneratedBrazeID(id, s.Settings.GeneratedUsers); !braze[id] && !ok {
				return serr(fmt.Sprintf("no user has braze_id %q", id), "segments", i, "braze_ids", j)
			}
		}
	}

	ids := map[string]bool{}
	for i, c := range s.Campaigns {
		if err := checkMessaging("campaigns", i, c.ID, c.Status, c.Segment, ids, segs, campaignStatuses); err != nil {
			return err
		}
	}
	ids = map[string]bool{}
	for i, c := range s.Canvases {
		if err := checkMessaging("canvases", i, c.ID, c.Status, c.Segment, ids, segs, canvasStatuses); err != nil {
			return err
		}
	}
	return nil
}

var (
	campaignStatuses = []string{"active", "paused", "stopped", "archived"}
	canvasStatuses   = []string{"active", "paused", "archived"}
)

func checkMessaging(list string, i int, id, status, segment string, ids, segs map[string]bool, statuses []string) error {
	if id == "" {
		return serr("id is required", list, i)
	}
	if ids[id] {
		return serr(fmt.Sprintf("id %q is used twice", id), list, i, "id")
	}
	ids[id] = true
	if status != "" && !contains(statuses, status) {
		return serr(fmt.Sprintf("unknown status %q; use one of %s", status, strings.Join(statuses, ", ")), list, i, "status")
	}
	if segment != "" && !segs[segment] {
		return serr(fmt.Sprintf("no segment is named %q", segment), list, i, "segment")
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// normalizeYAML turns decoded YAML values into what encoding/json would
// have produced (float64 numbers, map[string]any), so seeded attributes
// behave like ones sent to /users/track.
func normalizeYAML(v any) any {
	switch v := v.(type) {
	case int:
		return float64(v)
	case int64:
		return float64(v)
	case uint64:
		return float64(v)
	case float32:
		return float64(v)
	case time.Time:
		// YAML reads unquoted dates as timestamps; a date (midnight UTC)
		// goes back to YYYY-MM-DD, as dob needs.
		if v.Equal(v.Truncate(24*time.Hour)) && v.Location() == time.UTC {
			return v.Format("2006-01-02")
		}
		return v.UTC().Format(time.RFC3339Nano)
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = normalizeYAML(x)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[fmt.Sprint(k)] = normalizeYAML(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = normalizeYAML(x)
		}
		return out
	}
	return v
}

// createdBrazePrefix starts the braze ids of users the API creates.
const createdBrazePrefix = "c0ffee00"

func aliasKey(a Alias) string { return a.AliasLabel + ":" + a.AliasName }
