package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The Connected Audience object of the trigger endpoints: "only users in
// the audience get the message" (braze.md §2). braze.md names it an
// AND/OR filter tree; the filters themselves are those of Braze's
// "Connected Audience Filter & Object" page
// (braze-inc/braze-docs:_docs/_api/objects_filters/connected_audience.md):
// custom_attribute, push_subscription_status, email_subscription_status
// and last_used_app. A filter the emulator cannot evaluate is refused with
// a 400 rather than ignored: ignoring it would send to users the real
// audience leaves out, and a test would pass against the emulator that
// fails against Braze.

// audience is one node of a parsed Connected Audience object.
type audience interface {
	match(u *user, now time.Time) bool
}

type allOf []audience // {"AND": [...]}
type anyOf []audience // {"OR": [...]}

func (a allOf) match(u *user, now time.Time) bool {
	for _, f := range a {
		if !f.match(u, now) {
			return false
		}
	}
	return true
}

func (a anyOf) match(u *user, now time.Time) bool {
	for _, f := range a {
		if f.match(u, now) {
			return true
		}
	}
	return false
}

// attrType is the type of custom attribute a comparison applies to.
type attrType uint8

const (
	typeAny attrType = iota // exists, does_not_exist
	typeString
	typeNumber
	typeBool
	typeArray
	typeTime
)

// attrFilter is a custom_attribute filter, its value decoded once.
type attrFilter struct {
	name string
	cmp  string
	typ  attrType
	str  string
	num  float64 // a number, or the days of the x_days comparisons
	b    bool
	val  any // includes_value, does_not_include_value
	re   *regexp.Regexp
	at   time.Time // after, before
}

// The comparisons of each custom attribute type, as the page's table
// lists them. Boolean has does_not_equal where the others have not_equal.
var (
	timeComparisons = map[string]bool{
		"less_than_x_days_ago": true, "greater_than_x_days_ago": true,
		"less_than_x_days_in_the_future": true, "greater_than_x_days_in_the_future": true,
		"after": true, "before": true,
	}
	numberComparisons = map[string]bool{
		"greater_than": true, "greater_than_or_equal_to": true, "less_than": true, "less_than_or_equal_to": true,
	}
)

const comparisonList = "equals, not_equal, does_not_equal, matches_regex, does_not_match_regex, includes_value, " +
	"does_not_include_value, greater_than, greater_than_or_equal_to, less_than, less_than_or_equal_to, " +
	"less_than_x_days_ago, greater_than_x_days_ago, less_than_x_days_in_the_future, " +
	"greater_than_x_days_in_the_future, after, before, exists or does_not_exist"

const filterList = "AND, OR, custom_attribute, push_subscription_status, email_subscription_status or last_used_app"

// maxAudienceDepth caps how deeply AND and OR nest. Braze documents no
// limit (A); 32 levels are far more than a hand-written audience needs,
// and keep a crafted one cheap to read and to test for every recipient.
const maxAudienceDepth = 32

// maxAudienceFilters caps the filters of one audience, AND and OR not
// counted. Braze documents no limit (A). A regular expression can cost
// 100 KB to compile from a few bytes (\w{1000}), so a request full of
// them could take gigabytes; engine run --sandbox runs the emulator in
// the engine's own process.
const maxAudienceFilters = 100

// parseAudience reads a request's audience; a non-empty string is the
// reason it is refused, naming where as a path such as
// audience.AND[1].custom_attribute. The text is decoded once into a tree
// that audienceNode walks: decoding each AND/OR level again from its own
// text cost depth × size (4,990 nested ANDs in 50 KB allocated 2 GB).
func parseAudience(raw json.RawMessage, where string) (audience, string) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber() // an out-of-range number is then named as such
	var tree any
	if d.Decode(&tree) != nil {
		return nil, where + " must be an object: a Connected Audience filter, or AND/OR of them"
	}
	filters := 0
	return audienceNode(tree, where, 0, &filters)
}

// audienceNode reads one filter (or AND/OR of filters) inside depth
// levels of AND/OR; filters counts those read so far.
func audienceNode(v any, where string, depth int, filters *int) (audience, string) {
	f, ok := v.(map[string]any)
	if !ok {
		return nil, where + " must be an object: a Connected Audience filter, or AND/OR of them"
	}
	if len(f) != 1 {
		keys := make([]string, 0, len(f))
		for k := range f {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return nil, fmt.Sprintf("%s must hold exactly one filter (%s), not %d keys%s; combine several with AND or OR",
			where, filterList, len(keys), listed(keys))
	}
	var kind string
	var body any
	for k, v := range f {
		kind, body = k, v
	}
	where += "." + kind
	if kind == "AND" || kind == "OR" {
		if depth == maxAudienceDepth {
			return nil, fmt.Sprintf("%s: AND and OR nest more than %d levels deep, the emulator's limit; flatten the audience",
				where, maxAudienceDepth)
		}
		items, ok := body.([]any)
		if !ok {
			return nil, where + " must be an array of filters"
		}
		// An empty AND or OR names no audience; refused rather than
		// read as everyone or no one (A: the page does not say).
		if len(items) == 0 {
			return nil, where + " is empty; it needs at least one filter"
		}
		nodes := make([]audience, len(items))
		for i, it := range items {
			n, msg := audienceNode(it, fmt.Sprintf("%s[%d]", where, i), depth+1, filters)
			if msg != "" {
				return nil, msg
			}
			nodes[i] = n
		}
		if kind == "AND" {
			return allOf(nodes), ""
		}
		return anyOf(nodes), ""
	}
	if *filters++; *filters > maxAudienceFilters {
		return nil, fmt.Sprintf("%s: the audience has more than %d filters, the emulator's limit", where, maxAudienceFilters)
	}
	switch kind {
	case "custom_attribute":
		return parseAttrFilter(body, where)
	case "push_subscription_status", "email_subscription_status":
		return parseSubFilter(body, where, strings.TrimSuffix(kind, "_subscription_status")+"_subscribe")
	case "last_used_app":
		// The emulator records no app sessions, so it cannot tell
		// when a user last used the app; guessing would send to
		// users Braze leaves out (or the reverse).
		return nil, where + ": the emulator cannot evaluate last_used_app filters (it records no app sessions); " +
			"use custom_attribute or subscription filters, or recipients"
	default:
		return nil, fmt.Sprintf("%s: unknown filter %q; Connected Audience filters are %s", where, kind, filterList)
	}
}

func listed(keys []string) string {
	if len(keys) == 0 {
		return ""
	}
	return " (" + strings.Join(keys, ", ") + ")"
}

// filterFields reads a filter's object and refuses keys it does not know,
// so a misspelt "comparision" is an error, not a filter that matches
// everyone.
func filterFields(body any, where string, known ...string) (map[string]any, string) {
	f, ok := body.(map[string]any)
	if !ok {
		return nil, where + " must be an object"
	}
	for k := range f {
		if !contains(known, k) {
			return nil, fmt.Sprintf("%s: unknown field %q; it takes %s", where, k, strings.Join(known, ", "))
		}
	}
	return f, ""
}

func parseAttrFilter(body any, where string) (audience, string) {
	f, msg := filterFields(body, where, "custom_attribute_name", "comparison", "value")
	if msg != "" {
		return nil, msg
	}
	name, _ := f["custom_attribute_name"].(string)
	if name == "" {
		return nil, where + ": 'custom_attribute_name' must be a non-empty string"
	}
	cmp, _ := f["comparison"].(string)
	if cmp == "" {
		return nil, fmt.Sprintf("%s: 'comparison' must be one of %s", where, comparisonList)
	}
	v := f["value"]
	if n, isNum := v.(json.Number); isNum {
		x, err := strconv.ParseFloat(string(n), 64)
		if err != nil {
			return nil, where + ": 'value' holds a number out of range"
		}
		v = x
	}
	a := &attrFilter{name: name, cmp: cmp}
	str, isStr := v.(string)
	num, isNum := v.(float64)
	b, isBool := v.(bool)
	bad := func(want string) (audience, string) {
		return nil, fmt.Sprintf("%s: comparison %q needs a 'value' that is %s, not %s", where, cmp, want, short(v))
	}
	switch {
	case cmp == "exists" || cmp == "does_not_exist":
		// "value is not required" with these; one given is ignored
		a.typ = typeAny
	case cmp == "equals" || cmp == "not_equal" || cmp == "does_not_equal":
		// equals applies to strings, numbers and booleans; not_equal to
		// strings and numbers; does_not_equal to booleans.
		switch {
		case isStr && cmp != "does_not_equal":
			a.typ, a.str = typeString, str
		case isNum && cmp != "does_not_equal":
			a.typ, a.num = typeNumber, num
		case isBool && cmp != "not_equal":
			a.typ, a.b = typeBool, b
		case cmp == "does_not_equal":
			return bad("true or false (does_not_equal is the boolean comparison; strings and numbers use not_equal)")
		case cmp == "not_equal":
			return bad("a string or a number (booleans use does_not_equal)")
		default:
			return bad("a string, a number or a boolean")
		}
	case cmp == "matches_regex" || cmp == "does_not_match_regex":
		if !isStr {
			return bad("a string")
		}
		// "Regular expressions in Braze for segmentation and filters
		// automatically add the /gi modifier" (braze-docs
		// _docs/_user_guide/engagement_tools/segments/regex.md); /g
		// changes nothing for a yes/no match.
		var err error
		if a.re, err = regexp.Compile("(?i)" + str); err != nil {
			// Compiled again as given, so the error quotes the user's text.
			if _, plain := regexp.Compile(str); plain != nil {
				err = plain
			}
			// Go's RE2 syntax lacks some of what Braze's engine may
			// take (lookarounds, backreferences): refused rather than
			// matched some other way.
			return nil, fmt.Sprintf("%s: the emulator cannot evaluate the regular expression %q (it uses Go's RE2 syntax): %s",
				where, str, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
		a.typ = typeString
	case cmp == "includes_value" || cmp == "does_not_include_value":
		if !isStr && !isNum && !isBool {
			return bad("a string, a number or a boolean")
		}
		a.typ, a.val = typeArray, v
	case numberComparisons[cmp]:
		if !isNum {
			return bad("a number")
		}
		a.typ, a.num = typeNumber, num
	case cmp == "after" || cmp == "before":
		// "value must be an ISO 8601 DateTime string"
		t, ok := parseTime(str)
		if !isStr || !ok {
			return bad("an ISO 8601 date and time such as \"2026-01-31T00:00:00Z\"")
		}
		a.typ, a.at = typeTime, t
	case timeComparisons[cmp]:
		if !isNum || num < 0 {
			return bad("a number of days, 0 or more")
		}
		// More days than lie between any two dates a time attribute can
		// hold (years 0000 to 9999) all answer alike, so a larger count
		// is clamped to keep shiftDays within an int.
		a.typ, a.num = typeTime, min(num, maxDays)
	default:
		return nil, fmt.Sprintf("%s: unknown comparison %q; use one of %s", where, cmp, comparisonList)
	}
	return a, ""
}

// match tests one profile. What a missing or empty attribute matches
// follows the segment filters of braze-docs
// _docs/_user_guide/data/custom_data/custom_attributes.md, the dashboard
// segment doc applied to API audiences (A until tried against Braze):
//   - numbers: "'Exactly 0' and 'Less Than' filters include users with
//     NULL fields", so a user without the attribute matches less_than and
//     equals 0 (the page names no "at most", so less_than_or_equal_to
//     does not take them);
//   - arrays: HAS A VALUE is "has any value or is not empty", IS EMPTY
//     "is empty or does not exist";
//   - strings: IS NOT BLANK "exists on a user's profile and is not an
//     empty string".
//
// Otherwise a user without the attribute matches only does_not_exist,
// and one whose attribute has another type than the comparison's
// matches nothing, negative comparisons included (A: the page does not
// say; Braze types each custom attribute workspace-wide, so the
// emulator, which keeps no such schema, stays on the side of sending
// less).
func (a *attrFilter) match(u *user, now time.Time) bool {
	v, ok := u.attrs[a.name]
	if standardAttrs[a.name] {
		ok = false // a profile field, not a custom attribute
	}
	switch a.cmp {
	case "exists":
		return ok && !blank(v)
	case "does_not_exist":
		return !ok || blank(v)
	}
	if !ok {
		return a.typ == typeNumber && (a.cmp == "less_than" || a.cmp == "equals" && a.num == 0)
	}
	switch a.typ {
	case typeString:
		s, ok := v.(string)
		if !ok {
			return false
		}
		// braze-docs _docs/_user_guide/data/custom_data/custom_attributes.md,
		// the string table: EQUALS is "Case sensitive", DOES NOT EQUAL
		// "Not case sensitive".
		switch a.cmp {
		case "equals":
			return s == a.str
		case "not_equal":
			return !strings.EqualFold(s, a.str)
		case "matches_regex":
			return a.re.MatchString(s)
		case "does_not_match_regex":
			return !a.re.MatchString(s)
		}
	case typeNumber:
		n, ok := v.(float64)
		if !ok {
			return false
		}
		switch a.cmp {
		case "equals":
			return n == a.num
		case "not_equal":
			return n != a.num
		case "greater_than":
			return n > a.num
		case "greater_than_or_equal_to":
			return n >= a.num
		case "less_than":
			return n < a.num
		case "less_than_or_equal_to":
			return n <= a.num
		}
	case typeBool:
		b, ok := v.(bool)
		if !ok {
			return false
		}
		if a.cmp == "equals" {
			return b == a.b
		}
		return b != a.b
	case typeArray:
		arr, ok := v.([]any)
		if !ok {
			return false
		}
		return containsValue(arr, a.val) == (a.cmp == "includes_value")
	case typeTime:
		s, ok := v.(string)
		t, isTime := parseTime(s)
		if !ok || !isTime {
			return false
		}
		switch a.cmp {
		case "after":
			return t.After(a.at)
		case "before":
			return t.Before(a.at)
		case "less_than_x_days_ago":
			return !t.After(now) && t.After(shiftDays(now, -a.num))
		case "greater_than_x_days_ago":
			return t.Before(shiftDays(now, -a.num))
		case "less_than_x_days_in_the_future":
			return !t.Before(now) && t.Before(shiftDays(now, a.num))
		case "greater_than_x_days_in_the_future":
			return t.After(shiftDays(now, a.num))
		}
	}
	return false
}

// blank: an empty string or array counts as no value for exists and
// does_not_exist (see match).
func blank(v any) bool {
	switch v := v.(type) {
	case string:
		return v == ""
	case []any:
		return len(v) == 0
	}
	return false
}

// maxDays is more days than separate 0000-01-01 from 9999-12-31 (about
// 3.65 million).
const maxDays = 4_000_000

// shiftDays moves t by days of 24 hours: custom_attributes.md says
// relative time filters "measure 1 day as 24 hours" (A: for API
// audiences too). Whole days go through AddDate in UTC, where every day
// has 24 hours, as a time.Duration holds only about 106,751 days.
func shiftDays(t time.Time, days float64) time.Time {
	whole, frac := math.Modf(days)
	return t.UTC().AddDate(0, 0, int(whole)).Add(time.Duration(frac * float64(24*time.Hour)))
}

// timeLayouts are the ISO 8601 forms a time custom attribute or an
// after/before value may take; a zone-less one is read as UTC.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05", "2006-01-02"}

func parseTime(s string) (time.Time, bool) {
	if len(s) < 10 || s[4] != '-' {
		return time.Time{}, false
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// subFilter is a push_subscription_status or email_subscription_status
// filter: comparison is or is_not, value opted_in, subscribed or
// unsubscribed, tested against the profile's push_subscribe or
// email_subscribe.
type subFilter struct {
	attr   string
	want   string
	negate bool
}

func parseSubFilter(body any, where, attr string) (audience, string) {
	f, msg := filterFields(body, where, "comparison", "value")
	if msg != "" {
		return nil, msg
	}
	cmp, _ := f["comparison"].(string)
	if cmp != "is" && cmp != "is_not" {
		return nil, where + ": 'comparison' must be is or is_not"
	}
	val, _ := f["value"].(string)
	if val != "opted_in" && val != "subscribed" && val != "unsubscribed" {
		return nil, where + ": 'value' must be opted_in, subscribed or unsubscribed"
	}
	return &subFilter{attr: attr, want: val, negate: cmp == "is_not"}, ""
}

func (s *subFilter) match(u *user, _ time.Time) bool {
	state, _ := u.attrs[s.attr].(string)
	if state == "" {
		// A profile that never set it counts as subscribed (A: Braze's
		// default subscription state; the filter page does not say).
		state = "subscribed"
	}
	return (state == s.want) != s.negate
}
