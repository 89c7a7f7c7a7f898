package sandbox

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

func TestFaultValidation(t *testing.T) {
	tests := []struct {
		json string
		want string // part of the error; empty means valid
	}{
		{`{"error_ratio":0.3}`, ""},
		{`{"emulator":"braze","path":"/braze/*","latency":"20ms"}`, ""},
		{`{"throttle":{"for":"2s","every":"10s"}}`, ""},
		{`{}`, "does nothing"},
		{`{"error_ratio":1.5}`, "error_ratio must be between 0 and 1"},
		{`{"drop_ratio":-0.1}`, "drop_ratio must be between 0 and 1"},
		{`{"error_ratio":0.1,"error_status":422}`, ""},
		{`{"error_ratio":0.1,"error_status":429}`, "use throttle"},
		{`{"error_ratio":0.1,"error_status":302}`, "4xx or 5xx"},
		{`{"emulator":"shopify","latency":"1s"}`, `emulator "shopify"`},
		{`{"path":"braze/users/track","latency":"1s"}`, "must start with /"},
		{`{"throttle":{}}`, `needs "for"`},
		{`{"error_ratio":0.1,"count":-1}`, "negative"},
		// Faults that could never fire (a QA run).
		{`{"path":"/braze/users/track?x=1","error_ratio":1}`, "holds a query"},
		{`{"emulator":"braze","path":"/sessionm/*","error_ratio":1}`, `is not under emulator braze's (/braze/...)`},
		{`{"emulator":"braze","path":"/sessionm/core/x","error_ratio":1}`, `is not under emulator braze's`},
		{`{"path":"/braze/users/*/x","error_ratio":1}`, "* matches only at the end"},
		{`{"path":"/_sandbox/*","error_ratio":1}`, "never faulted"},
		{`{"path":"/Braze/users/track","error_ratio":1}`, "case-sensitive"},
		{`{"path":"/sessionm/*","error_ratio":1}`, ""},
		{`{"path":"/*","error_ratio":1}`, ""},
		{`{"emulator":"sessionm_connect","path":"/sessionm/*","error_ratio":1}`, ""},
		{`{"throttle":{"for":"3s","every":"2s"}}`, `must be longer than its "for"`},
		{`{"throttle":{"for":"2s","every":"2s"}}`, `must be longer than its "for"`},
	}
	for _, tt := range tests {
		var f Fault
		if err := json.Unmarshal([]byte(tt.json), &f); err != nil {
			t.Fatalf("%s: %v", tt.json, err)
		}
		err := f.validate()
		if tt.want == "" && err != nil {
			t.Errorf("%s: unexpected error %v", tt.json, err)
		}
		if tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: error %v, want it to mention %q", tt.json, err, tt.want)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	var f Fault
	if err := json.Unmarshal([]byte(`{"latency":250}`), &f); err == nil || !strings.Contains(err.Error(), `"250ms"`) {
		t.Fatalf("a number as latency: %v", err)
	}
	if err := json.Unmarshal([]byte(`{"latency":"soon"}`), &f); err == nil {
		t.Fatal("a bad duration is accepted")
	}
	b, _ := json.Marshal(Fault{Latency: Duration(1500 * time.Millisecond)})
	if !strings.Contains(string(b), `"latency":"1.5s"`) {
		t.Fatalf("latency written as %s", b)
	}
}

func TestThrottleBursts(t *testing.T) {
	fs := newFaultSet(1)
	if _, err := fs.add(Fault{Emulator: Braze, Throttle: &Throttle{For: Duration(2 * time.Second), Every: Duration(10 * time.Second)}}); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("POST", "/braze/campaigns/trigger/send", nil)
	steps := []struct {
		at         time.Duration
		status     int
		retryAfter time.Duration
	}{
		{0, 429, 2 * time.Second}, // the first request opens a burst
		{500 * time.Millisecond, 429, 1500 * time.Millisecond},
		{2 * time.Second, 0, 0}, // the burst is over
		{9 * time.Second, 0, 0},
		{10 * time.Second, 429, 2 * time.Second}, // the next one, Every after the first
		{12*time.Second + time.Millisecond, 0, 0},
	}
	for _, s := range steps {
		v := fs.decide(Braze, req, t0.Add(s.at))
		if v.status != s.status || v.retryAfter != s.retryAfter {
			t.Fatalf("at %v: status %d retry-after %v, want %d %v", s.at, v.status, v.retryAfter, s.status, s.retryAfter)
		}
	}
	if v := fs.decide(SessionMCore, httptest.NewRequest("POST", "/sessionm/core/x", nil), t0.Add(time.Second/2)); v.status != 0 {
		t.Fatal("a Braze rule applied to SessionM")
	}
	if got := retryAfterSeconds(1500 * time.Millisecond); got != "2" {
		t.Fatalf("Retry-After for 1.5s is %s, want 2 (rounded up)", got)
	}
	if got := retryAfterSeconds(0); got != "1" {
		t.Fatalf("Retry-After for 0 is %s, want 1", got)
	}
}

func TestFaultRatioCountAndOrder(t *testing.T) {
	fs := newFaultSet(42)
	if _, err := fs.add(Fault{Path: "/sessionm/core/*", ErrorRatio: 0.3, Latency: Duration(time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("POST", "/sessionm/core/priv/v1/apps/k/users/u/tags", nil)
	errs := 0
	const n = 10_000
	for range n {
		v := fs.decide(SessionMCore, req, t0)
		if v.latency != time.Millisecond {
			t.Fatalf("latency %v", v.latency)
		}
		if v.status == 503 {
			errs++
		}
	}
	if errs < n*27/100 || errs > n*33/100 {
		t.Fatalf("%d of %d requests failed, want about 30%%", errs, n)
	}
	other := httptest.NewRequest("POST", "/braze/users/track", nil)
	if v := fs.decide(Braze, other, t0); v.status != 0 || v.latency != 0 {
		t.Fatal("a path rule applied to another path")
	}

	fs = newFaultSet(1)
	added, _ := fs.add(Fault{DropRatio: 1, Count: 2})
	if added.Remaining != 2 {
		t.Fatalf("remaining %d, want 2", added.Remaining)
	}
	for i := range 3 {
		v := fs.decide(Braze, other, t0)
		if v.drop != (i < 2) {
			t.Fatalf("request %d: drop=%v; a rule with count 2 must apply twice", i, v.drop)
		}
	}
	if len(fs.list()) != 0 {
		t.Fatal("a spent rule is still listed")
	}
}

func TestFaultRemove(t *testing.T) {
	fs := newFaultSet(1)
	a, _ := fs.add(Fault{ErrorRatio: 1})
	fs.add(Fault{DropRatio: 1})
	if !fs.remove(a.ID) || fs.remove(a.ID) {
		t.Fatal("removing one rule by id")
	}
	if len(fs.list()) != 1 || !fs.remove(0) || len(fs.list()) != 0 {
		t.Fatal("removing all rules")
	}
}

func TestFaultRulesAreCapped(t *testing.T) {
	fs := newFaultSet(1)
	for range maxFaultRules {
		if _, err := fs.add(Fault{ErrorRatio: 0.1}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := fs.add(Fault{ErrorRatio: 0.1}); err == nil || !strings.Contains(err.Error(), "DELETE /_sandbox/faults") {
		t.Fatalf("rule %d: %v; want a refusal that says how to remove rules", maxFaultRules+1, err)
	}
	fs.remove(1)
	if _, err := fs.add(Fault{ErrorRatio: 0.1}); err != nil {
		t.Fatalf("after a removal: %v", err)
	}
}

// A 4xx fault's code is its status's name in snake case.
func TestFaultCode(t *testing.T) {
	for status, want := range map[int]string{400: "bad_request", 422: "unprocessable_entity", 418: "im_a_teapot", 499: "client_error", 414: "request_uri_too_long"} {
		if got := faultCode(status); got != want {
			t.Errorf("faultCode(%d) = %q, want %q", status, got, want)
		}
	}
}
