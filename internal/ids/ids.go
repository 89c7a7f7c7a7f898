// Package ids holds the identifiers the SessionM and Braze emulators share:
// random uuids and the formulas of the synthetic users that
// settings.generated_users adds to both seeds. Generated user i has the
// same external id in both emulators, and Braze's custom attribute
// sessionm_user_id holds its SessionM id, so a load test can address one
// user in both systems without asking either emulator.
package ids

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// NewUUID returns a random (version 4, RFC 9562 variant) uuid in lower case,
// such as "3f0c2a9e-5b1d-4c7e-9a2f-0d8e6b4c1a37".
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// genSessionMMiddle is the fixed middle of generated SessionM ids: a
// v1-shaped uuid like SessionM's own (sessionm.md §2, O), in the 8000
// clock-sequence group that no random id uses.
const genSessionMMiddle = "-32f5-11ef-8000-"

// GeneratedSessionMID is the SessionM user id of generated user i (from 0):
// printf("%08x-32f5-11ef-8000-%012x", i, i).
func GeneratedSessionMID(i int) string {
	if i < 0 || uint64(i) > 0xffffffff {
		return fmt.Sprintf("%08x-32f5-11ef-8000-%012x", i, i) // outside every seed's range
	}
	var s [36]byte
	putHex(s[0:8], uint64(i))
	copy(s[8:24], genSessionMMiddle)
	putHex(s[24:36], uint64(i))
	return string(s[:])
}

// ParseGeneratedSessionMID is the inverse of GeneratedSessionMID: it accepts
// exactly the spelling GeneratedSessionMID gives (lower-case hex, both
// numbers equal), and only for an index below n, the number of generated
// users.
func ParseGeneratedSessionMID(id string, n int) (int, bool) {
	i, ok := parseGeneratedSessionMID(id)
	return i, ok && i < n
}

func parseGeneratedSessionMID(id string) (int, bool) {
	if len(id) != 36 || id[8:24] != genSessionMMiddle {
		return 0, false
	}
	a, ok1 := lowerHex(id[:8])
	b, ok2 := lowerHex(id[24:])
	if !ok1 || !ok2 || a != b || a > maxIndex {
		return 0, false
	}
	return int(a), true
}

// GeneratedExternalID is the external id of generated user i (from 0) in
// both emulators: "load-%06d", load-000000 first.
func GeneratedExternalID(i int) string {
	if i < 0 {
		return fmt.Sprintf("load-%06d", i) // outside every seed's range
	}
	var b [32]byte
	return string(appendPadded(append(b[:0], "load-"...), i, 6))
}

// ParseGeneratedExternalID is the inverse of GeneratedExternalID: "load-"
// and at least six ASCII digits, zero-padded to six and no more; only for
// an index below n.
func ParseGeneratedExternalID(ext string, n int) (int, bool) {
	i, ok := parseGeneratedExternalID(ext)
	return i, ok && i < n
}

func parseGeneratedExternalID(ext string) (int, bool) {
	digits, ok := strings.CutPrefix(ext, "load-")
	if !ok || len(digits) < 6 || len(digits) > 10 {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	if len(digits) > 6 && digits[0] == '0' {
		return 0, false // only one spelling names a user
	}
	n, err := strconv.ParseUint(digits, 10, 63)
	if err != nil || n > maxIndex {
		return 0, false
	}
	return int(n), true
}

// GeneratedEmail is the email of generated user i (from 0) in both
// emulators: "load-%06d@example.com".
func GeneratedEmail(i int) string { return GeneratedExternalID(i) + "@example.com" }

// ParseGeneratedEmail is the inverse of GeneratedEmail; it takes a
// lower-cased address (emails compare without case in both emulators), and
// answers only for an index below n.
func ParseGeneratedEmail(email string, n int) (int, bool) {
	i, ok := parseGeneratedEmail(email)
	return i, ok && i < n
}

func parseGeneratedEmail(email string) (int, bool) {
	local, ok := strings.CutSuffix(email, "@example.com")
	if !ok {
		return 0, false
	}
	return parseGeneratedExternalID(local)
}

// generatedBrazePrefix is "load" in hex.
const generatedBrazePrefix = "6c6f6164"

// GeneratedBrazeID is the braze_id of generated user i (from 0): "6c6f6164"
// ("load" in hex) and 16 lower-case hex digits of i.
func GeneratedBrazeID(i int) string {
	if i < 0 {
		return fmt.Sprintf("%s%016x", generatedBrazePrefix, i) // outside every seed's range
	}
	var s [24]byte
	copy(s[:8], generatedBrazePrefix)
	putHex(s[8:], uint64(i))
	return string(s[:])
}

// ParseGeneratedBrazeID is the inverse of GeneratedBrazeID (lower-case hex
// only), and only for an index below n.
func ParseGeneratedBrazeID(id string, n int) (int, bool) {
	i, ok := parseGeneratedBrazeID(id)
	return i, ok && i < n
}

func parseGeneratedBrazeID(id string) (int, bool) {
	rest, ok := strings.CutPrefix(id, generatedBrazePrefix)
	if !ok || len(rest) != 16 {
		return 0, false
	}
	n, ok := lowerHex(rest)
	if !ok || n > maxIndex {
		return 0, false
	}
	return int(n), true
}

// maxIndex keeps parsed indexes inside an int on every platform Go runs on
// with 32-bit ints; the emulators allow far fewer users.
const maxIndex = 1<<31 - 1

// putHex writes v as len(dst) lower-case hex digits, zero-padded; callers
// make sure v fits.
func putHex(dst []byte, v uint64) {
	const digits = "0123456789abcdef"
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = digits[v&0xf]
		v >>= 4
	}
}

// appendPadded appends the decimal i, zero-padded to width digits.
func appendPadded(b []byte, i, width int) []byte {
	var d [20]byte
	s := strconv.AppendInt(d[:0], int64(i), 10)
	for n := len(s); n < width; n++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// lowerHex parses lower-case hex digits only, so that exactly one spelling
// of an id names a generated user.
func lowerHex(s string) (uint64, bool) {
	if len(s) == 0 || len(s) > 16 {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}
