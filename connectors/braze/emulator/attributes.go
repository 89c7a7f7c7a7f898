package emulator

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // time_zone values are checked against the IANA database even where the host has none
	"unicode/utf8"
)

// Attribute updates, shared by /users/track and the recipients'
// "attributes" of the trigger endpoints (braze.md §2, §3).

type opKind uint8

const (
	opSet   opKind = iota
	opUnset        // the value was null: remove the attribute
	opInc          // {"inc": n}
	opArray        // {"add": [...], "remove": [...]}
)

type attrOp struct {
	name        string
	kind        opKind
	value       any
	inc         float64
	add, remove []any
}

// reservedAttr are the keys of an attributes object that identify the user
// or steer the call; they are not profile attributes.
var reservedAttr = map[string]bool{
	"external_id": true, "user_alias": true, "braze_id": true,
	"_update_existing_only": true, "push_token_import": true,
}

// liquidNames maps the /users/track names of standard attributes to the
// names Liquid uses for them (braze.md §6: ${email_address}, ${city}, ...).
var liquidNames = map[string]string{
	"first_name": "first_name", "last_name": "last_name", "email": "email_address",
	"phone": "phone_number", "home_city": "city", "country": "country",
	"language": "language", "time_zone": "time_zone", "dob": "date_of_birth",
	"gender": "gender",
}

// standardAttrs are Braze's user profile fields; every other name is a
// custom attribute.
var standardAttrs = map[string]bool{
	"first_name": true, "last_name": true, "email": true, "phone": true, "home_city": true,
	"country": true, "language": true, "time_zone": true, "dob": true, "gender": true,
	"current_location": true, "date_of_first_session": true, "date_of_last_session": true,
	"email_subscribe": true, "push_subscribe": true, "subscription_groups": true,
	"facebook": true, "twitter": true, "image_url": true, "marked_email_as_spam_at": true,
	"push_tokens": true, "email_open_tracking_disabled": true, "email_click_tracking_disabled": true,
}

// parseAttr checks one attribute update and says what to do with it; a
// non-empty second result is the reason it is refused.
func parseAttr(name string, v any) (attrOp, string) {
	op := attrOp{name: name, kind: opSet, value: v}
	if msg := checkName(name, "attribute"); msg != "" {
		return op, msg
	}
	if v == nil {
		op.kind = opUnset
		return op, ""
	}
	if standardAttrs[name] {
		return op, checkStandard(name, v)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return op, ""
	}
	if inc, has := obj["inc"]; has && len(obj) == 1 {
		n, ok := inc.(float64)
		if !ok {
			return op, fmt.Sprintf("'%s': 'inc' needs a number", name)
		}
		op.kind, op.inc = opInc, n
		return op, ""
	}
	add, hasAdd := obj["add"]
	remove, hasRemove := obj["remove"]
	if (hasAdd || hasRemove) && len(obj) == btoi(hasAdd)+btoi(hasRemove) {
		op.kind = opArray
		if hasAdd {
			if op.add, ok = add.([]any); !ok {
				return op, fmt.Sprintf("'%s': 'add' needs an array", name)
			}
		}
		if hasRemove {
			if op.remove, ok = remove.([]any); !ok {
				return op, fmt.Sprintf("'%s': 'remove' needs an array", name)
			}
		}
	}
	return op, ""
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// checkName applies Braze's rules for custom attribute and property names
// (braze.md §3): non-empty, at most 255 characters, no leading "$".
func checkName(name, what string) string {
	switch {
	case name == "":
		return what + " names must not be empty"
	case utf8.RuneCountInString(name) > 255:
		return fmt.Sprintf("%s name '%.20s...' is longer than 255 characters", what, name)
	case strings.HasPrefix(name, "$"):
		return fmt.Sprintf("%s name '%s' must not start with '$'", what, name)
	}
	return ""
}

// checkStandard checks the documented formats of the standard profile
// fields (user attributes object). Braze drops invalid values; the emulator
// reports them as non-fatal errors too (A), so a test sees them.
func checkStandard(name string, v any) string {
	s, isString := v.(string)
	switch name {
	case "first_name", "last_name", "home_city", "image_url", "phone", "date_of_first_session",
		"date_of_last_session", "marked_email_as_spam_at":
		if !isString {
			return fmt.Sprintf("'%s' must be a string", name)
		}
	case "email":
		at := strings.IndexByte(s, '@')
		if !isString || at <= 0 || at == len(s)-1 || strings.ContainsAny(s, " \t\r\n") {
			return fmt.Sprintf("'email' is not a valid email address: %s", short(v))
		}
	case "country":
		if !isString || len(s) != 2 || !isLetters(s) {
			return fmt.Sprintf("'country' must be an ISO-3166-1 alpha-2 code such as \"ES\", not %s", short(v))
		}
	case "language":
		if !isString || len(s) != 2 || !isLetters(s) {
			return fmt.Sprintf("'language' must be an ISO-639-1 code such as \"es\", not %s", short(v))
		}
	case "time_zone":
		if !isString || !validTimeZone(s) {
			return fmt.Sprintf("'time_zone' must be an IANA time zone such as \"Europe/Madrid\", not %s", short(v))
		}
	case "dob":
		if _, err := time.Parse("2006-01-02", s); !isString || err != nil {
			return fmt.Sprintf("'dob' must be a date as YYYY-MM-DD, not %s", short(v))
		}
	case "gender":
		if !isString || len(s) != 1 || !strings.Contains("MFONP", strings.ToUpper(s)) {
			return fmt.Sprintf("'gender' must be one of M, F, O, N, P or null, not %s", short(v))
		}
	case "email_subscribe", "push_subscribe":
		if s != "opted_in" && s != "subscribed" && s != "unsubscribed" {
			return fmt.Sprintf("'%s' must be opted_in, subscribed or unsubscribed, not %s", name, short(v))
		}
	case "current_location":
		m, ok := v.(map[string]any)
		_, lon := m["longitude"].(float64)
		_, lat := m["latitude"].(float64)
		if !ok || !lon || !lat {
			return "'current_location' must be an object with numeric longitude and latitude"
		}
	case "subscription_groups", "push_tokens":
		if _, ok := v.([]any); !ok {
			return fmt.Sprintf("'%s' must be an array", name)
		}
	case "email_open_tracking_disabled", "email_click_tracking_disabled":
		if _, ok := v.(bool); !ok {
			return fmt.Sprintf("'%s' must be true or false", name)
		}
	}
	return ""
}

func isLetters(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// short quotes a rejected value for an error message, cut to a readable
// length.
func short(v any) string {
	var s string
	switch v := v.(type) {
	case string:
		s = fmt.Sprintf("%q", v)
	case nil:
		s = "null"
	case map[string]any:
		s = "an object"
	case []any:
		s = "an array"
	default:
		s = fmt.Sprint(v)
	}
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

// tzCache remembers valid time-zone names only, at most maxTZCache of
// them: names come from clients, so invalid ones are looked up each time
// rather than kept. The IANA database has about 600 names, so every valid
// one fits.
var tzCache struct {
	sync.RWMutex
	valid map[string]struct{}
}

const maxTZCache = 1000

func validTimeZone(name string) bool {
	if name == "" || name == "Local" {
		return false
	}
	tzCache.RLock()
	_, hit := tzCache.valid[name]
	tzCache.RUnlock()
	if hit {
		return true
	}
	if _, err := time.LoadLocation(name); err != nil {
		return false
	}
	tzCache.Lock()
	if tzCache.valid == nil {
		tzCache.valid = make(map[string]struct{})
	}
	if len(tzCache.valid) < maxTZCache {
		tzCache.valid[name] = struct{}{}
	}
	tzCache.Unlock()
	return true
}

// applyOp changes one attribute of a profile. Arrays of custom attributes
// behave as Braze documents them: unique values, "add" moves a present
// value to the end, and at most maxArr elements.
func applyOp(attrs map[string]any, op attrOp, maxArr int) {
	custom := !standardAttrs[op.name]
	switch op.kind {
	case opUnset:
		delete(attrs, op.name)
	case opSet:
		if arr, ok := op.value.([]any); ok && custom {
			// ['hotdog','hotdog','pizza'] is stored as ['hotdog','pizza']
			out := make([]any, 0, len(arr))
			for _, x := range arr {
				if !containsValue(out, x) {
					out = append(out, x)
				}
			}
			if len(out) > maxArr {
				out = out[:maxArr]
			}
			attrs[op.name] = out
			return
		}
		if s, ok := op.value.(string); ok && op.name == "gender" {
			attrs[op.name] = strings.ToUpper(s)
			return
		}
		attrs[op.name] = op.value
	case opInc:
		cur, _ := attrs[op.name].(float64) // a missing or non-numeric value counts as 0 (A)
		attrs[op.name] = cur + op.inc
	case opArray:
		cur, _ := attrs[op.name].([]any)
		out := make([]any, 0, len(cur)+len(op.add))
		out = append(out, cur...)
		for _, x := range op.add {
			out = addUnique(out, x)
		}
		for _, x := range op.remove {
			out = removeValue(out, x)
		}
		if len(out) > maxArr {
			out = out[len(out)-maxArr:]
		}
		attrs[op.name] = out
	}
}

func addUnique(arr []any, x any) []any {
	arr = removeValue(arr, x)
	return append(arr, x)
}

func containsValue(arr []any, x any) bool {
	for _, y := range arr {
		if sameValue(x, y) {
			return true
		}
	}
	return false
}

func removeValue(arr []any, x any) []any {
	out := arr[:0]
	for _, y := range arr {
		if !sameValue(x, y) {
			out = append(out, y)
		}
	}
	return out
}

func sameValue(a, b any) bool {
	switch a := a.(type) {
	case string:
		b, ok := b.(string)
		return ok && a == b
	case float64:
		b, ok := b.(float64)
		return ok && a == b
	case bool:
		b, ok := b.(bool)
		return ok && a == b
	case nil:
		return b == nil
	}
	return reflect.DeepEqual(a, b)
}
