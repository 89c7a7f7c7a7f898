package ids

import (
	"fmt"
	"regexp"
	"testing"
)

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewUUID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		u := NewUUID()
		if !uuidV4.MatchString(u) {
			t.Fatalf("NewUUID() = %q, not a lower-case v4 uuid", u)
		}
		if seen[u] {
			t.Fatalf("NewUUID() repeated %q", u)
		}
		seen[u] = true
	}
}

// The formulas the seeds document (examples/sandbox/*.yaml), and their
// inverses for every index the emulators allow.
func TestGeneratedFormulas(t *testing.T) {
	for _, i := range []int{0, 1, 7, 15, 16, 255, 99_999, 100_000, 999_999, 1_000_000, 9_999_999, 1<<31 - 1} {
		want := map[string]string{
			"sessionm": fmt.Sprintf("%08x-32f5-11ef-8000-%012x", i, i),
			"external": fmt.Sprintf("load-%06d", i),
			"email":    fmt.Sprintf("load-%06d@example.com", i),
			"braze":    fmt.Sprintf("6c6f6164%016x", i),
		}
		got := map[string]string{
			"sessionm": GeneratedSessionMID(i),
			"external": GeneratedExternalID(i),
			"email":    GeneratedEmail(i),
			"braze":    GeneratedBrazeID(i),
		}
		for k := range want {
			if got[k] != want[k] {
				t.Errorf("%s(%d) = %q, want %q", k, i, got[k], want[k])
			}
		}
		parse := map[string]func(string, int) (int, bool){
			"sessionm": ParseGeneratedSessionMID, "external": ParseGeneratedExternalID,
			"email": ParseGeneratedEmail, "braze": ParseGeneratedBrazeID,
		}
		for k, p := range parse {
			if n, ok := p(want[k], i+1); !ok || n != i {
				t.Errorf("parse %s %q = %d, %v; want %d", k, want[k], n, ok, i)
			}
			if _, ok := p(want[k], i); ok {
				t.Errorf("parse %s %q accepted with only %d generated users", k, want[k], i)
			}
		}
	}
	// negative indexes follow the printf formulas too (no seed has them)
	if GeneratedExternalID(-1) != "load--00001" || GeneratedBrazeID(-1) != "6c6f6164-000000000000001" {
		t.Errorf("negative: %q %q", GeneratedExternalID(-1), GeneratedBrazeID(-1))
	}
}

// Only the one spelling each formula gives names a generated user.
func TestParseRefusesOtherSpellings(t *testing.T) {
	bad := map[string][]string{
		"sessionm": {
			"", "00000001-32f5-11ef-8000-000000000002", // numbers differ
			"0000000A-32f5-11ef-8000-00000000000A", // upper case
			"00000001-32f5-11ef-8001-000000000001", // other group
			"0000001-32f5-11ef-8000-0000000000001", // misplaced dash
			"0000000g-32f5-11ef-8000-00000000000g",
		},
		"external": {"", "load-", "load-1", "load-00001", "load-0000001", "load-+00001", "load- 00001", "Load-000001", "load-000001x", "load-99999999999"},
		"email":    {"load-000001", "load-000001@example.org", "load-00001@example.com", "LOAD-000001@example.com"},
		"braze":    {"", "6c6f6164", "6c6f616400000000000000000000000", "6c6f61640000000000000000000000001", "6c6f6164000000000000000A", "7c6f61640000000000000001", "6c6f6164ffffffffffffffff"},
	}
	parse := map[string]func(string, int) (int, bool){
		"sessionm": ParseGeneratedSessionMID, "external": ParseGeneratedExternalID,
		"email": ParseGeneratedEmail, "braze": ParseGeneratedBrazeID,
	}
	for k, list := range bad {
		for _, s := range list {
			if n, ok := parse[k](s, 1<<40); ok {
				t.Errorf("parse %s %q = %d, want refused", k, s, n)
			}
		}
	}
}

func BenchmarkGeneratedSessionMID(b *testing.B) {
	for i := 0; b.Loop(); i++ {
		_ = GeneratedSessionMID(i & 0xfffff)
	}
}
