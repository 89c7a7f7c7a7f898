package runner

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine/inbox"
)

// A merged trigger answered 201 with a cut body: every member delivered once.
func TestMergedTriggerWithACut201IsDeliveredOnce(t *testing.T) {
	for _, how := range []string{"late", "reset", "large"} {
		t.Run(how, func(t *testing.T) {
			var reqs, recips atomic.Int32
			braze := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				reqs.Add(1)
				b, _ := io.ReadAll(r.Body)
				recips.Add(int32(strings.Count(string(b), "external_user_id")))
				r.Body = io.NopCloser(strings.NewReader(""))
				cutAnswer(t, w, r, how, 201, http.Header{})
			}))
			defer braze.Close()
			store := sendTriggers(t, braze, 10, 300*time.Millisecond, how, nil)
			dls, _ := store.DeadLetters(inbox.DeadFilter{})
			t.Logf("%d requests, %d recipients sent, %d dead letters", reqs.Load(), recips.Load(), len(dls))
			if recips.Load() != 10 || len(dls) != 0 {
				t.Errorf("want each of 10 recipients once and no dead letter")
			}
		})
	}
}

// A merged trigger answered 401 (a refusal of the whole request, by its
// status alone) whose body was cut: README says such a refusal
// dead-letters every event at once, not one request each.
func TestMergedTriggerWithACut401IsDeadLetteredAtOnce(t *testing.T) {
	var reqs atomic.Int32
	braze := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqs.Add(1)
		cutAnswer(t, w, r, "reset", 401, http.Header{})
	}))
	defer braze.Close()
	store := sendTriggers(t, braze, 10, 300*time.Millisecond, "reset", nil)
	dls, _ := store.DeadLetters(inbox.DeadFilter{})
	t.Logf("%d requests, %d dead letters", reqs.Load(), len(dls))
	// One merged request, or two if the webhooks straddled a linger.
	if reqs.Load() > 2 || len(dls) != 10 {
		t.Errorf("a cut 401 to a merged request of 10: %d requests, %d dead letters; want 1 or 2 requests and 10 dead letters, not each event sent again alone", reqs.Load(), len(dls))
	}
}

// What a cut 201 leaves unknown (a refused object, SessionM's
// "status":"error") is logged for each event it delivered, by name: one
// warning per request could not say which of 50 events to look at.
func TestCut201WarnsForEachEventItDelivered(t *testing.T) {
	braze := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cutAnswer(t, w, r, "reset", http.StatusCreated, http.Header{})
	}))
	defer braze.Close()
	var logs strings.Builder // written before sendTriggers stops the runner, read after
	sendTriggers(t, braze, 3, 300*time.Millisecond, "reset", slog.New(slog.NewJSONHandler(&logs, nil)))
	named := map[string]bool{}
	for _, line := range strings.Split(logs.String(), "\n") {
		var l struct{ Msg, Event string }
		if json.Unmarshal([]byte(line), &l) == nil && strings.HasPrefix(l.Msg, "delivered, but the answer's body was cut") {
			named[l.Event] = true
		}
	}
	if len(named) != 3 {
		t.Errorf("warnings for events %v; want one for each of the 3 delivered\n%s", named, logs.String())
	}
}
