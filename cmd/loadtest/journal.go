package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// journalEntry is the part of a /_sandbox/requests entry the load test
// reads.
type journalEntry struct {
	ID        int64         `json:"id"`
	Time      time.Time     `json:"time"`
	Path      string        `json:"path"`
	Body      string        `json:"body"`
	Truncated bool          `json:"truncated"`
	Status    int           `json:"status"`
	Duration  time.Duration `json:"duration_ns"`
}

// answered is when the emulator finished with the request: the moment the
// target had the event, which is what a user would call delivered.
func (e *journalEntry) answered() time.Time { return e.Time.Add(e.Duration) }

type journalPage struct {
	Requests  []journalEntry `json:"requests"`
	NextSince int64          `json:"next_since"`
	Dropped   int64          `json:"dropped"`
}

// journalPageSize bounds one poll's answer, which the sandbox builds under
// its journal lock.
const journalPageSize = 5000

// tracker reads the scenario's target requests from the emulators'
// journal and counts, per generated user, the deliveries it saw. While
// the engine works it only asks how many target requests there are: the
// requests themselves are read when the count says the last delivery may
// be among them, and at the end. Reading them throughout took CPU from the
// engine under test (decoding them was a seventh of the load generator's
// CPU in F1), and the journal keeps each request's own time, so reading
// late changes no figure.
type tracker struct {
	client   *http.Client
	url      string
	countURL string
	sc       *scenario

	mu      sync.Mutex
	since   int64
	count   []int32     // 2xx target requests naming the user
	first   []time.Time // when the first of them was answered
	last    time.Time   // the latest answered 2xx
	targets int         // target requests read, any status
	refused map[string]int
	names   int // recipients in 2xx target requests
	// service is each 2xx target request's time in the emulator: if it
	// is large, the emulator, not the engine, sets the pace.
	service []time.Duration
	dropped int64
	err     error // the first journal entry that made no sense

	// counted is how many target requests the journal holds up to
	// countSince, by count=true polls.
	counted    int
	countSince int64
}

func newTracker(client *http.Client, control string, sc *scenario, users int) *tracker {
	// Only the fields read below: bodies and an indented answer cost the
	// sandbox (and this process) CPU that the engine under test needs.
	fields := "id,time,path,status,duration_ns"
	if sc.readsBody {
		fields += ",body,truncated"
	}
	q := url.Values{"path": {sc.journalPath}, "method": {http.MethodPost}, "limit": {strconv.Itoa(journalPageSize)}, "fields": {fields}}
	c := url.Values{"path": {sc.journalPath}, "method": {http.MethodPost}, "count": {"true"}}
	return &tracker{
		client: client, url: control + "/requests?" + q.Encode(), countURL: control + "/requests?" + c.Encode(), sc: sc,
		count: make([]int32, users), first: make([]time.Time, users), refused: map[string]int{},
	}
}

// catchUp reads the new target requests once the journal holds at least
// enough of them to carry every accepted event and more than were read.
func (t *tracker) catchUp(ctx context.Context, enough int) error {
	if err := t.pollCount(ctx); err != nil {
		return err
	}
	t.mu.Lock()
	due := t.counted >= enough && t.counted > t.targets
	t.mu.Unlock()
	if !due {
		return nil
	}
	return t.poll(ctx)
}

// pollCount adds the target requests that arrived since the last count.
func (t *tracker) pollCount(ctx context.Context) error {
	t.mu.Lock()
	since := t.countSince
	t.mu.Unlock()
	var c struct {
		Count     int   `json:"count"`
		NextSince int64 `json:"next_since"`
	}
	if err := t.get(ctx, t.countURL+"&since="+strconv.FormatInt(since, 10), &c); err != nil {
		return err
	}
	t.mu.Lock()
	t.counted += c.Count
	t.countSince = max(t.countSince, c.NextSince)
	t.mu.Unlock()
	return nil
}

func (t *tracker) get(ctx context.Context, url string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return fmt.Errorf("reading the sandbox journal: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("reading the sandbox journal: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		return fmt.Errorf("reading the sandbox journal: %w", err)
	}
	return nil
}

// poll reads every new target request.
func (t *tracker) poll(ctx context.Context) error {
	for {
		t.mu.Lock()
		since := t.since
		t.mu.Unlock()
		var page journalPage
		if err := t.get(ctx, t.url+"&since="+strconv.FormatInt(since, 10), &page); err != nil {
			return err
		}
		t.add(&page)
		if len(page.Requests) < journalPageSize {
			return nil
		}
	}
}

func (t *tracker) add(page *journalPage) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.since = max(t.since, page.NextSince)
	t.dropped = page.Dropped
	for i := range page.Requests {
		e := &page.Requests[i]
		t.targets++
		if e.Status < 200 || e.Status > 299 {
			t.refused[strconv.Itoa(e.Status)]++
			continue
		}
		users, err := t.sc.recipients(e)
		if err != nil {
			t.failLocked(err)
			continue
		}
		t.service = append(t.service, e.Duration)
		at := e.answered()
		if at.After(t.last) {
			t.last = at
		}
		t.names += len(users)
		for _, u := range users {
			if u >= len(t.count) {
				t.failLocked(fmt.Errorf("journal entry %d names user %d, beyond the %d generated", e.ID, u, len(t.count)))
				continue
			}
			if t.count[u] == 0 || at.Before(t.first[u]) {
				t.first[u] = at
			}
			t.count[u]++
		}
	}
}

func (t *tracker) failLocked(err error) {
	if t.err == nil {
		t.err = err
	}
}

// delivered counts the deliveries that match accepted events: each user
// can be credited at most as many deliveries as it had events accepted;
// anything beyond is a repeat (an at-least-once redelivery).
func (t *tracker) delivered(want []int32) (delivered, repeats int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for u, w := range want {
		got := t.count[u]
		delivered += int(min(got, w))
		repeats += int(max(got-w, 0))
	}
	return delivered, repeats
}
