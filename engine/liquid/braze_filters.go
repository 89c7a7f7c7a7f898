package liquid

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/osteele/liquid/filters"
	"github.com/osteele/liquid/values"
)

// addBrazeFilters adds the filters Braze documents on top of the Shopify
// ones and those the pipelines need (specs/braze.md §6, "Braze additions"
// and "Supported"), json among them.
func addBrazeFilters(cfg filters.FilterDictionary, now func() time.Time) {
	cfg.AddFilter("json", jsonFilter)
	cfg.AddFilter("as_json_string", jsonFilter)
	cfg.AddFilter("json_escape", jsonEscape)
	cfg.AddFilter("json_parse", jsonParse)
	cfg.AddFilter("url_escape", func(s any) string { return percentEscape(liquidString(s), urlSafe) })
	cfg.AddFilter("url_param_escape", func(s any) string { return percentEscape(liquidString(s), paramSafe) })
	cfg.AddFilter("money", money)
	cfg.AddFilter("number_with_delimiter", numberWithDelimiter)
	cfg.AddFilter("property_accessor", propertyAccessor)
	cfg.AddFilter("time_zone", timeZone(now))
	cfg.AddFilter("md5", digestHex(md5.New))
	cfg.AddFilter("sha1", digestHex(sha1.New))
	cfg.AddFilter("sha2", digestHex(sha256.New))
	cfg.AddFilter("hmac_sha256", hmacFilter(sha256.New, hex.EncodeToString))
	cfg.AddFilter("hmac_sha512", hmacFilter(sha512.New, hex.EncodeToString))
	cfg.AddFilter("hmac_sha1", hmacFilter(sha1.New, hex.EncodeToString)) // the former name of hmac_sha1_hex
	cfg.AddFilter("hmac_sha1_hex", hmacFilter(sha1.New, hex.EncodeToString))
	cfg.AddFilter("hmac_sha1_base64", hmacFilter(sha1.New, base64.StdEncoding.EncodeToString))
	cfg.AddFilter("hmac_sha256_hex", hmacFilter(sha256.New, hex.EncodeToString))
	cfg.AddFilter("hmac_sha256_base64", hmacFilter(sha256.New, base64.StdEncoding.EncodeToString))
}

// money formats an amount in dollars. Braze's does not shift the decimal
// point as Shopify's does (cents): 145 is $145.00, not $1.45.
func money(v any) string {
	f := asFloat(toNumber(v))
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	return sign + "$" + strconv.FormatFloat(f, 'f', 2, 64)
}

// numberWithDelimiter puts commas between thousands: 123456 is 123,456.
func numberWithDelimiter(v any) string {
	var s string
	switch n := toNumber(v).(type) {
	case int64:
		s = strconv.FormatInt(n, 10)
	case float64:
		s = strconv.FormatFloat(n, 'f', -1, 64)
	}
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	whole, frac, hasFrac := strings.Cut(s, ".")
	var b strings.Builder
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if hasFrac {
		b.WriteString("." + frac)
	}
	return sign + b.String()
}

// propertyAccessor reads a key of a hash, where the key may come from a
// variable: {{ hash | property_accessor: key }}.
func propertyAccessor(h any, key any) any {
	v, _ := index(h, key)
	return v
}

var offsetRE = regexp.MustCompile(`^([+-])(\d{2}):?(\d{2})$`)

// timeZone moves a time into a zone, given as an IANA name
// (America/New_York) or an offset (-0500, +05:30), so that date prints
// the local time there. Its input is what date takes.
func timeZone(now func() time.Time) func(any, string) (any, error) {
	return func(in any, zone string) (any, error) {
		t, ok := asTime(in, now)
		if !ok {
			return in, nil
		}
		if m := offsetRE.FindStringSubmatch(zone); m != nil {
			h, _ := strconv.Atoi(m[2])
			min, _ := strconv.Atoi(m[3])
			secs := (h*60 + min) * 60
			if m[1] == "-" {
				secs = -secs
			}
			return t.In(time.FixedZone(zone, secs)), nil
		}
		loc, err := time.LoadLocation(zone)
		if err != nil {
			return nil, fmt.Errorf("time_zone: '%s' is not a time zone; give a name such as America/New_York or an offset such as -0500", zone)
		}
		return t.In(loc), nil
	}
}

// asTime reads what the date filter reads: a time, "now" or "today" (the
// time now gives), a Unix timestamp, or a date string.
func asTime(in any, now func() time.Time) (time.Time, bool) {
	switch v := values.ToLiquid(in).(type) {
	case time.Time:
		return v, true
	case string:
		switch {
		case v == "now" || v == "today":
			return now(), true
		case digitsRE.MatchString(v):
			return unixTime(toNumber(v)), true
		}
		t, err := values.ParseDate(v)
		return t, err == nil
	case nil:
		return time.Time{}, false
	default:
		if isNumber(v) {
			return unixTime(toNumber(v)), true
		}
	}
	return time.Time{}, false
}

func digestHex(newHash func() hash.Hash) func(any) string {
	return func(v any) string {
		h := newHash()
		h.Write([]byte(liquidString(v)))
		return hex.EncodeToString(h.Sum(nil))
	}
}

func hmacFilter(newHash func() hash.Hash, encode func([]byte) string) func(any, any) string {
	return func(v, key any) string {
		m := hmac.New(newHash, []byte(liquidString(key)))
		m.Write([]byte(liquidString(v)))
		return encode(m.Sum(nil))
	}
}
