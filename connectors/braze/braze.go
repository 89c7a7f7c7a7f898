// Package braze describes Braze's REST API to the engine (specs/braze.md):
// the braze connection type with its messaging and user endpoints, and the
// braze_webhook source that Braze webhook campaigns post to.
package braze

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/loyalty-connector/engine/engine/spec"
)

// MaxRecipients is the most recipients one trigger request may carry
// (braze.md §2).
const MaxRecipients = 50

// MaxTrackObjects is the most objects per array of one /users/track
// request (braze.md §3).
const MaxTrackObjects = 75

// MaxTrackUsers is the most objects all the arrays of one /users/track
// request carry together: 75 each of attributes, events and purchases,
// "up to 225 users per call" (braze.md §3).
const MaxTrackUsers = 3 * MaxTrackObjects

// usersTrackMaxUpdates is the connection setting that caps the objects of
// one /users/track request, all arrays together. Braze gives customers on
// "MAU CY 24-25" contracts 50 updates per request combined (attributes,
// events and purchases; braze.md §1, default rate limits) instead of 75
// per array; without the setting, the engine packs 75 per array.
const usersTrackMaxUpdates = "users_track_max_updates"

// usersTrackAttributeErrors is the connection setting that says what Braze
// does with a /users/track attributes object its answer names in an
// error, which its docs leave open (braze.md §3: "the rest is still
// processed", of the request): "field" (A, the default, and what the
// sandbox does) drops the fields at fault and applies the others, so a
// replay must not send again the fields Braze applied (an "inc" would
// count twice); "object" refuses the whole object, so a replay sends it
// all.
const usersTrackAttributeErrors = "users_track_attribute_errors"

// REST is the Braze REST API with Bearer auth (braze.md §1).
var REST = &spec.ConnectionType{
	Name: "braze",
	Doc:  "Braze REST API: API-triggered campaigns and Canvases, user data.",
	Fields: []spec.Field{
		{Name: "api_key", Required: true, Secret: true, Doc: "a REST API key with the needed permissions"},
		{Name: usersTrackMaxUpdates, Check: checkMaxUpdates,
			Doc: "the most objects one /users/track request carries, attributes, events and purchases together (50 on MAU CY 24-25 contracts); default 75 per array"},
		{Name: usersTrackAttributeErrors, Check: checkAttributeErrors,
			Doc: "what Braze does with a /users/track attributes object its answer names in an error (undocumented): field (the default, as the sandbox does) applies the object's other fields, so a replay sends only the fields that render otherwise; object refuses it all, so a replay sends it all"},
	},
	Endpoints: []spec.Endpoint{
		{
			Name:        "campaign_trigger",
			Doc:         "send an API-triggered campaign (braze.md §2)",
			Method:      http.MethodPost,
			Path:        "/campaigns/trigger/send",
			ContentType: "application/json",
			Body:        triggerBody("campaign_id", "trigger_properties"),
			MaxBatch:    MaxRecipients,
			RatePool:    "messaging",
			RatePoolOf:  broadcastPool,
		},
		{
			Name:        "canvas_trigger",
			Doc:         "send an API-triggered Canvas (braze.md §2)",
			Method:      http.MethodPost,
			Path:        "/canvas/trigger/send",
			ContentType: "application/json",
			Body:        triggerBody("canvas_id", "context", "canvas_entry_properties"),
			MaxBatch:    MaxRecipients,
			RatePool:    "messaging",
			RatePoolOf:  broadcastPool,
		},
		{
			Name:        "users_track",
			Doc:         "record attributes, events and purchases (braze.md §3)",
			Method:      http.MethodPost,
			Path:        "/users/track",
			ContentType: "application/json",
			Body: spec.Object(map[string]*spec.Shape{
				"attributes": spec.Array(spec.OpenObject().With(trackIdentifierRule), 0, MaxTrackObjects),
				"events":     spec.Array(spec.OpenObject("name", "time").With(trackIdentifierRule, trackTimeRule, propertyNamesRule), 0, MaxTrackObjects),
				"purchases":  spec.Array(spec.OpenObject("product_id", "currency", "price", "time").With(trackIdentifierRule, trackTimeRule, purchaseRule, propertyNamesRule), 0, MaxTrackObjects),
			}),
			MaxBatch:      MaxTrackObjects,
			MaxTotal:      maxUpdates,
			MaxTotalField: usersTrackMaxUpdates,
			AppliedInPart: attributesAppliedInPart,
			RatePool:      "users_track",
		},
	},
	// braze.md §1: the send endpoints share 250,000 requests an hour per
	// workspace, but a call that targets a segment or Connected Audience
	// is limited to 250 a minute; /users/track allows 3,000 per 3 seconds.
	RateLimits: map[string]spec.RateLimit{
		"messaging":   {Requests: 250_000, Window: time.Hour},
		"broadcast":   {Requests: 250, Window: time.Minute, Isolated: true},
		"users_track": {Requests: 3_000, Window: 3 * time.Second},
	},
	Authorize: func(c *spec.Connection) (spec.Auth, error) {
		return spec.Auth{Header: "Authorization", Scheme: "Bearer", Credential: c.Fields["api_key"]}, nil
	},
	ResponseError: responseError,
	HTTPSOnly:     true, // braze.md §1 lists https://rest.* hosts only
}

// checkMaxUpdates accepts a users_track_max_updates of 1 to 225.
func checkMaxUpdates(v string) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1 || n > MaxTrackUsers {
		return fmt.Errorf("%s must be a whole number from 1 to %d (Braze takes at most %d objects per array, %d in all), not %q; 50 on MAU CY 24-25 contracts",
			usersTrackMaxUpdates, MaxTrackUsers, MaxTrackObjects, MaxTrackUsers, v)
	}
	return nil
}

// checkAttributeErrors accepts a users_track_attribute_errors of field or
// object.
func checkAttributeErrors(v string) error {
	if v != "field" && v != "object" {
		return fmt.Errorf("%s must be field (Braze applies the other fields of an attributes object it names in an error) or object (it refuses the whole object), not %q", usersTrackAttributeErrors, v)
	}
	return nil
}

// attributesAppliedInPart lists the /users/track lists whose objects Braze
// applies in part when its answer names them in an error: attributes,
// unless the connection says it refuses them whole. An event or a
// purchase is one record, taken or not.
func attributesAppliedInPart(c *spec.Connection) []string {
	if c.Fields[usersTrackAttributeErrors] == "object" {
		return nil
	}
	return []string{"attributes"}
}

// maxUpdates is the users_track_max_updates of c, or 0 when it sets none
// (the loader has checked it).
func maxUpdates(c *spec.Connection) int {
	n, err := strconv.Atoi(strings.TrimSpace(c.Fields[usersTrackMaxUpdates]))
	if err != nil {
		return 0
	}
	return n
}

// broadcastPool puts a trigger call that targets a segment or a Connected
// Audience (broadcast: true, or an audience) in the broadcast pool, 250 a
// minute (braze.md §1), so that the headers and 429s of that small window
// pace broadcasts only, not the recipient triggers of the 250,000 an hour.
// An audience counts even beside recipients (A: braze.md §1 says "targets
// a Connected Audience"; counting it is the side that cannot draw 429s).
func broadcastPool(body map[string]any) string {
	if b, _ := body["broadcast"].(bool); b {
		return "broadcast"
	}
	if a := body["audience"]; a != nil {
		return "broadcast"
	}
	return ""
}

// triggerBody is the request of /campaigns/trigger/send (idField
// campaign_id, properties trigger_properties) or /canvas/trigger/send
// (canvas_id, context or its old name canvas_entry_properties).
func triggerBody(idField string, propertyFields ...string) *spec.Shape {
	recipient := map[string]*spec.Shape{
		"external_user_id": spec.String(),
		"user_alias": spec.Object(map[string]*spec.Shape{
			"alias_name":  spec.String(),
			"alias_label": spec.String(),
		}, "alias_name", "alias_label"),
		"email":                 spec.String(),
		"braze_id":              spec.String(),
		"prioritization":        spec.Array(spec.String(), 1, 0),
		"send_to_existing_only": spec.Boolean(),
		"attributes":            spec.OpenObject(),
	}
	top := map[string]*spec.Shape{
		idField:      spec.String(),
		"broadcast":  spec.Boolean(),
		"audience":   spec.OpenObject(),
		"recipients": spec.Array(spec.Object(recipient).With(recipientRule), 0, MaxRecipients),
	}
	for _, p := range propertyFields {
		recipient[p] = spec.OpenObject()
		top[p] = spec.OpenObject()
	}
	if idField == "campaign_id" {
		top["send_id"] = spec.String()
		top["attachments"] = spec.Array(spec.Object(map[string]*spec.Shape{
			"file_name": spec.String(),
			"url":       spec.String(),
		}, "file_name", "url"), 0, 0)
	}
	return spec.Object(top, idField).With(audienceRule)
}

// audienceRule: who a trigger goes to (braze.md §2): recipients, or the
// whole segment with broadcast, never both.
func audienceRule(body map[string]any) string {
	broadcast := body["broadcast"]
	if _, unknown := broadcast.(spec.Unknown); unknown {
		return ""
	}
	if broadcast == true {
		if n, known := items(body["recipients"]); known && n > 0 {
			return "'broadcast' cannot be true when 'recipients' are given; leave broadcast out to send to the recipients, or recipients out to send to the whole segment"
		}
		if n, known := items(body["attachments"]); known && n > 0 {
			return "'broadcast' cannot be true when 'attachments' are given"
		}
		return ""
	}
	if n, known := items(body["recipients"]); known && n == 0 {
		return "no recipients: give 'recipients', or set 'broadcast' to true to send to the whole segment"
	}
	return ""
}

// recipientRule: one identifier per recipient, and what each one needs
// (braze.md §2, recipient object).
func recipientRule(r map[string]any) string {
	if msg := emptyIdentifier(r, "external_user_id", "email", "braze_id"); msg != "" {
		return msg
	}
	ids, templated := identifiers(r, "external_user_id", "user_alias", "email", "braze_id")
	if len(ids) > 1 || len(ids)+len(templated) == 0 {
		return fmt.Sprintf("give exactly one of external_user_id, user_alias, email or braze_id; this recipient has %s", describeFields(ids))
	}
	if ids = append(ids, templated...); len(ids) > 1 {
		// Templates, which may render null (left out): which one is
		// there only the rendered body tells.
		return ""
	}
	if n, known := items(r["prioritization"]); ids[0] == "email" && known && n == 0 {
		return `'prioritization' is required when the recipient is identified by email, e.g. ["identified", "most_recently_updated"]`
	}
	if r["send_to_existing_only"] == false {
		if ids[0] == "user_alias" {
			return "'send_to_existing_only' cannot be false for a user alias"
		}
		if r["attributes"] == nil {
			return "'send_to_existing_only' false needs 'attributes', with which Braze creates the user"
		}
	}
	return ""
}

// trackIdentifierRule: each /users/track object names its user with one
// of external_id, braze_id or user_alias, or else by email or phone
// (braze.md §3).
func trackIdentifierRule(obj map[string]any) string {
	ids, templated := identifiers(obj, "external_id", "braze_id", "user_alias")
	// Beside one of those, email and phone are profile fields, which may
	// be empty (a re-QA: an empty phone dead-lettered the whole update).
	named := []string{"external_id", "braze_id"}
	switch {
	case len(ids)+len(templated) > 0:
	case obj["email"] != nil: // then phone is a profile field too
		named = []string{"email"}
	default:
		named = []string{"phone"}
	}
	if msg := emptyIdentifier(obj, named...); msg != "" {
		return msg
	}
	switch {
	case len(ids) > 1:
		return fmt.Sprintf("give only one of external_id, braze_id or user_alias; this object has %s", describeFields(ids))
	case len(ids)+len(templated) == 0 && obj["email"] == nil && obj["phone"] == nil:
		return "no user: give external_id, braze_id or user_alias (or email or phone)"
	}
	return ""
}

// trackTimeRule: an event's or a purchase's time is ISO-8601 (braze.md
// §3). Written out wrong ("yesterday"), validate and dry-run said ok and
// Braze refused every event (a QA run).
func trackTimeRule(obj map[string]any) string {
	if s, ok := obj["time"].(string); ok && s != "" {
		if _, ok := ParseTime(s); !ok {
			return fmt.Sprintf("'time' must be an ISO-8601 time such as 2026-11-29T10:00:00Z, not %q", s)
		}
	}
	return ""
}

// propertyNamesRule: an event's or purchase's properties may not be
// named with a leading "$", nor time or event_name, which Braze reserves
// (braze.md §3): such a request failed at Braze while dry-run said ok (a
// QA run).
func propertyNamesRule(obj map[string]any) string {
	props, ok := obj["properties"].(map[string]any)
	if !ok {
		return ""
	}
	for _, k := range slices.Sorted(maps.Keys(props)) {
		switch {
		case strings.HasPrefix(k, "$"):
			return fmt.Sprintf("the property name '%s' must not start with '$'", k)
		case k == "time" || k == "event_name":
			return fmt.Sprintf("the property name '%s' is reserved by Braze; name it otherwise", k)
		}
	}
	return ""
}

// purchaseRule: a purchase's currency is an ISO-4217 code, its price a
// number and its quantity a whole number from 1 to 100 (braze.md §3).
func purchaseRule(obj map[string]any) string {
	if s, ok := obj["currency"].(string); ok && !IsCurrency(s) {
		return fmt.Sprintf("'currency' must be an ISO-4217 code such as \"EUR\", not %q", s)
	}
	switch v := obj["price"].(type) {
	case string:
		return fmt.Sprintf("'price' must be a number, not the text %q", v)
	case bool, map[string]any, []any:
		return "'price' must be a number"
	}
	if q, ok := asNumber(obj["quantity"]); ok && (q != math.Trunc(q) || q < 1 || q > 100) {
		return fmt.Sprintf("'quantity' must be a whole number from 1 to 100, not %v", q)
	}
	return ""
}

// asNumber reads a JSON number as Decode or YAML give it.
func asNumber(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case float64:
		return n, true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

// identifiers lists the fields among names that obj gives a value, and
// apart those a template gives, which may render null and count as
// absent, so only the rendered body tells whether they are there.
// emptyIdentifier says so when one of the identifier fields names is
// empty text, which names no user: sent, Braze refused it, and a merged
// trigger request holding it cost a dozen requests to find it (a re-QA).
func emptyIdentifier(obj map[string]any, names ...string) string {
	for _, k := range names {
		if s, ok := obj[k].(string); ok && strings.TrimSpace(s) == "" {
			return fmt.Sprintf("'%s' is empty, so it names no user: does its template read a field some events lack? (the filter can leave them out)", k)
		}
	}
	return ""
}

func identifiers(obj map[string]any, names ...string) (given, templated []string) {
	for _, k := range names {
		switch obj[k].(type) {
		case nil:
		case spec.Unknown:
			templated = append(templated, k)
		default:
			given = append(given, k)
		}
	}
	return given, templated
}

// items is how many items v, an array, holds (none when v is absent or
// null), and whether that is known before rendering.
func items(v any) (n int, known bool) {
	switch v := v.(type) {
	case nil:
		return 0, true
	case []any:
		return len(v), true
	case spec.Unknown:
		return 0, false
	}
	return 1, true
}

func describeFields(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, " and ")
}

// WebhookSource receives the webhooks of a Braze webhook campaign or Canvas
// step (braze.md §4).
var WebhookSource = &spec.SourceType{
	Name:          "braze_webhook",
	Kind:          spec.HTTPSource,
	Doc:           "a Braze webhook campaign or Canvas webhook step posts here",
	DefaultMethod: http.MethodPost,
}

// responseError reads Braze's answer: any 2xx is a success, even with
// non-fatal "errors"; otherwise "message" says what went wrong (braze.md §1).
// A 2xx with a "notice" is the exception: Braze documents notices only for
// a paused or archived Canvas, which takes the trigger and sends nothing
// (braze.md §2), so the request is reported as not sent.
func responseError(status int, body []byte) error {
	if status >= 200 && status < 300 {
		if !bytes.Contains(body, []byte(`"notice"`)) {
			return nil // the usual answer: nothing to decode
		}
		var ok struct {
			Notice string `json:"notice"`
		}
		if json.Unmarshal(body, &ok) != nil || ok.Notice == "" {
			return nil
		}
		return &spec.NotSentError{Msg: "braze took the request but sent nothing: " + ok.Notice}
	}
	var env struct {
		Message string `json:"message"`
		Errors  []any  `json:"errors"`
	}
	var err error
	if json.Unmarshal(body, &env) == nil && env.Message != "" {
		msg := env.Message
		if len(env.Errors) > 0 {
			parts := make([]string, len(env.Errors))
			for i, e := range env.Errors {
				parts[i] = fmt.Sprint(e)
			}
			msg += " (" + strings.Join(parts, "; ") + ")"
		}
		err = fmt.Errorf("braze answered HTTP %d: %s", status, msg)
	} else {
		err = fmt.Errorf("braze answered HTTP %d: %s", status, spec.Excerpt(body))
	}
	if refusesWholeRequest(status, env.Message) {
		return &spec.WholeRequestError{Err: err}
	}
	return err
}

// refusesWholeRequest tells the answers that hold for a request whatever
// recipients or objects it carries (braze.md §1, fatal status codes): the
// key (401 invalid, 403 no permission or inactive account, 404 unknown
// key on older pages) and the campaign, Canvas or message variant, which
// the events merged into one request share. Any other 400 may be about
// one recipient or object.
func refusesWholeRequest(status int, message string) bool {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		return true
	case http.StatusBadRequest:
		for _, m := range wholeRequest400s {
			if strings.EqualFold(strings.TrimSpace(message), m) {
				return true
			}
		}
	}
	return false
}

// wholeRequest400s are the 400 messages about the campaign or Canvas
// (braze.md §1; the emulator answers the first two).
var wholeRequest400s = []string{"Invalid Campaign ID", "Invalid Canvas ID", "Message Variant Unspecified", "Invalid Message Variant", "Mismatched Message Type"}

// iso4217 lists the active ISO-4217 currency codes, space-separated with
// spaces at both ends.
const iso4217 = " AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN BZD " +
	"CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS " +
	"GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK " +
	"LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB " +
	"PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB " +
	"TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XBA XBB XBC XBD " +
	"XCD XCG XDR XOF XPD XPF XPT XSU XTS XUA XXX YER ZAR ZMW ZWG ZWL "

// IsCurrency reports whether code is an active ISO-4217 currency code, in
// any case, as /users/track takes a purchase's currency (braze.md §3).
func IsCurrency(code string) bool {
	return len(code) == 3 && strings.Contains(iso4217, " "+strings.ToUpper(code)+" ")
}

// isoLayouts are the ISO-8601 forms the engine and its emulator read; a time without a
// zone is UTC (the user attributes page says so for dates).
var isoLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05Z0700",
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04:05",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04Z07:00",
	"2006-01-02",
}

// ParseTime reads an event's or a purchase's time as ISO-8601 (braze.md
// §3), in UTC.
func ParseTime(s string) (time.Time, bool) {
	for _, l := range isoLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}
