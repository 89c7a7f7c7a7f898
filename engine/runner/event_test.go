package runner

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/loyalty-connector/engine/engine/inbox"
)

// The caller's credentials never reach the inbox, whatever the header is
// called.
func TestStoredRequestDropsCredentials(t *testing.T) {
	req := httptest.NewRequest("POST", "/hooks/x?a=1", nil)
	for _, h := range []string{"Authorization", "Cookie", "X-Api-Key", "X-Auth-Token", "X-Webhook-Secret", "X-Hub-Signature-256", "Proxy-Authorization"} {
		req.Header.Set(h, "s3cret")
	}
	req.Header.Set("Idempotency-Key", "evt-1")
	req.Header.Set("Content-Type", "application/json")
	got := newStoredRequest(req, nil).Headers
	if len(got) != 2 || got.Get("Idempotency-Key") != "evt-1" || got.Get("Content-Type") == "" {
		t.Fatalf("stored headers %v", got)
	}
}

// The accept answer, written by hand, decodes to what senders read, for
// ids that need escaping too.
func TestWriteAccepted(t *testing.T) {
	for _, tc := range []struct {
		id        string
		duplicate bool
	}{
		{"campaign-1-user-2", false},
		{`quote " backslash \ tab 	 <&> é`, true},
		{"", false},
	} {
		rec := httptest.NewRecorder()
		writeAccepted(rec, tc.id, tc.duplicate)
		var got struct {
			Accepted  *bool  `json:"accepted"`
			EventID   string `json:"event_id"`
			Duplicate bool   `json:"duplicate"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got.Accepted == nil || !*got.Accepted || got.EventID != tc.id || got.Duplicate != tc.duplicate {
			t.Errorf("%q: answer %s (%v)", tc.id, rec.Body.String(), err)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" || rec.Code != 200 {
			t.Errorf("%q: %d %s", tc.id, rec.Code, ct)
		}
		if strings.Contains(rec.Body.String(), "duplicate") != tc.duplicate {
			t.Errorf("%q: duplicate shown only for a repeat: %s", tc.id, rec.Body.String())
		}
	}
}

func TestEventLabel(t *testing.T) {
	for _, tc := range []struct {
		it   *item
		want string
	}{
		{&item{stored: &storedEvent{ID: "ab12:3", Row: &storedRow{File: "/in/segments/spring.csv", Number: 3}}}, "spring.csv row 3 (ab12:3)"},
		{&item{stored: &storedEvent{ID: "evt-1"}, rec: inbox.Record{Seq: 9}}, "evt-1"},
		{&item{stored: &storedEvent{}, rec: inbox.Record{Seq: 9}}, "#9"},
	} {
		if got := eventLabel(tc.it).LogValue().String(); got != tc.want {
			t.Errorf("label %q, want %q", got, tc.want)
		}
	}
}

// What a Braze webhook's headers cost at accept time.
func BenchmarkStoredRequest(b *testing.B) {
	req := httptest.NewRequest("POST", "/hooks/braze/tags/u-1", nil)
	for name, v := range map[string]string{"Authorization": "Basic abc", "Content-Type": "application/json", "User-Agent": "Braze Sender 75e404755ae1270441f07eb238f0faf25e44dfdc", "Idempotency-Key": "campaign-1-user-2", "Accept-Encoding": "gzip", "Content-Length": "34"} {
		req.Header.Set(name, v)
	}
	params := map[string]string{"user_id": "u-1"}
	b.ReportAllocs()
	for b.Loop() {
		if s := newStoredRequest(req, params); len(s.Headers) != 5 {
			b.Fatalf("%d headers kept", len(s.Headers))
		}
	}
}
