package runner

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine/inbox"
)

// sendMergedTriggers posts n campaign webhooks that Braze gets as merged
// triggers (with retries a few milliseconds apart), and waits until none
// is queued.
func sendMergedTriggers(t *testing.T, braze *httptest.Server, n int) *inbox.Store {
	t.Helper()
	proj := loaderFor(t, braze.URL).Load([]string{"testdata/pipelines"})
	for _, p := range proj.Pipelines {
		p.Delivery.Linger = 300 * time.Millisecond
		p.Delivery.Timeout = 300 * time.Millisecond
		p.Delivery.Attempts = 3
		p.Delivery.BackoffInitial, p.Delivery.BackoffMax = 10*time.Millisecond, 10*time.Millisecond
	}
	r, store := startRunner(t, proj.Pipelines)
	t.Cleanup(func() { r.Stop(5 * time.Second) })
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(srv.Close)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, err := http.Post(srv.URL+"/hooks/campaign", "application/json", strings.NewReader(fmt.Sprintf(`{"campaign_id":"c1","user":"u-%d","n":%d}`, i, i)))
			if err != nil || resp.StatusCode != 200 {
				t.Error(err, resp)
				return
			}
			resp.Body.Close()
		}(i)
	}
	wg.Wait()
	deadline := time.Now().Add(15 * time.Second)
	for store.Depth("any-campaign") > 0 {
		if time.Now().After(deadline) {
			t.Fatal("still queued")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return store
}

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
			store := sendMergedTriggers(t, braze, 10)
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
	store := sendMergedTriggers(t, braze, 10)
	dls, _ := store.DeadLetters(inbox.DeadFilter{})
	t.Logf("%d requests, %d dead letters", reqs.Load(), len(dls))
	// One merged request, or two if the webhooks straddled a linger.
	if reqs.Load() > 2 || len(dls) != 10 {
		t.Errorf("a cut 401 to a merged request of 10: %d requests, %d dead letters; want 1 or 2 requests and 10 dead letters, not each event sent again alone", reqs.Load(), len(dls))
	}
}
