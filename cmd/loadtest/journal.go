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

// tracker follows the scenario's target requests in the emulators'
// journal and counts, per generated user, the deliveries it saw.
type tracker struct {
	client *http.Client
	url    string
	sc     *scenario

	mu      sync.Mutex
	since   int64
	count   []int32     // 2xx target requests naming the user
	first   []time.Time // when the first of them was answered
	last    time.Time   // the latest answered 2xx
	targets int         // target requests, any status
	refused map[string]int
	names   int // recipients in 2xx target requests
	// service is each 2xx target request's time in the emulator: if it
	// is large, the emulator, not the engine, sets the pace.
	service []time.Duration
	dropped int64
	err     error // the first journal entry that made no sense
}

func newTracker(client *http.Client, control string, sc *scenario, users int) *tracker {
	// Only the fields read below: bodies and an indented answer cost the
	// sandbox (and this process) CPU that the engine under test needs.
	fields := "id,time,path,status,duration_ns"
	if sc.readsBody {
		fields += ",body,truncated"
	}
	q := url.Values{"path": {sc.journalPath}, "method": {http.MethodPost}, "limit": {strconv.Itoa(journalPageSize)}, "fields": {fields}}
	return &tracker{
		client: client, url: control + "/requests?" + q.Encode(), sc: sc,
		count: make([]int32, users), first: make([]time.Time, users), refused: map[string]int{},
	}
}

// follow polls the journal until ctx ends. Polling often enough keeps each
// answer small, and the journal is sized so that nothing is dropped.
func (t *tracker) follow(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if err := t.poll(ctx); err != nil && ctx.Err() == nil {
			t.fail(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// poll reads every new target request.
func (t *tracker) poll(ctx context.Context) error {
	for {
		t.mu.Lock()
		since := t.since
		t.mu.Unlock()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url+"&since="+strconv.FormatInt(since, 10), nil)
		if err != nil {
			return err
		}
		resp, err := t.client.Do(req)
		if err != nil {
			return fmt.Errorf("reading the sandbox journal: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			return fmt.Errorf("reading the sandbox journal: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
		}
		var page journalPage
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("reading the sandbox journal: %w", err)
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

func (t *tracker) fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failLocked(err)
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
