package main

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// sent is what the senders saw, per event. Each slot is written by the one
// sender that sent that event, so no lock is needed.
type sent struct {
	start   []time.Time     // when the request began
	latency []time.Duration // request start to the whole answer read
	status  []int           // 0: no answer
	// firstErr is the first transport error, for the report.
	firstErr string
	errOnce  sync.Once
	// behind is how late, at worst, an event left after its scheduled
	// time with --rate: when it grows, the senders could not hold the rate
	// and the latencies are those of a lower one.
	behind time.Duration
}

// newClient is the net/http client of the readiness and metrics requests
// and of BenchmarkLoopbackHTTPFloor; the webhooks go through sender.
func newClient(senders int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			// One keep-alive connection per concurrent request (the
			// floor benchmark's senders).
			MaxIdleConns:        senders,
			MaxIdleConnsPerHost: senders,
			MaxConnsPerHost:     senders,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// sendAll sends cfg.events webhooks of sc with cfg.senders concurrent
// copies of proto, at cfg.rate events per second or as fast as they go.
func sendAll(ctx context.Context, proto *sender, sc *scenario, cfg *config) *sent {
	n := cfg.events
	s := &sent{start: make([]time.Time, n), latency: make([]time.Duration, n), status: make([]int, n)}
	senders := make([]*sender, cfg.senders)
	for k := range senders {
		snd := *proto // each its own connection and buffer
		senders[k] = &snd
	}
	// Unbuffered: an index is handed over only when a sender is free to
	// send it, so the lag measured at the handover is the real one.
	next := make(chan int)
	go s.schedule(ctx, next, n, cfg.rate)
	var wg sync.WaitGroup
	for _, snd := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer snd.close()
			for i := range next {
				s.sendOne(snd, sc, i, i%cfg.users)
			}
		}()
	}
	wg.Wait()
	return s
}

// schedule hands out event indexes: as fast as senders take them, or each
// at start + i/rate. With a rate the schedule is fixed in advance, so slow
// answers do not lower the rate while a sender is free; when none is, the
// event leaves late, and the worst lag is reported.
func (s *sent) schedule(ctx context.Context, next chan<- int, n int, rate float64) {
	defer close(next)
	start := time.Now()
	var behind time.Duration
	for i := range n {
		if rate > 0 {
			due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return
				}
			}
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
			behind = max(behind, time.Since(due))
			continue
		}
		select {
		case next <- i:
		case <-ctx.Done():
			return
		}
	}
	// Read by the caller after the senders are done, which the close
	// of next orders after this write.
	s.behind = behind
}

func (s *sent) sendOne(snd *sender, sc *scenario, i, u int) {
	key := ""
	if sc.idempotencyKey != nil {
		key = sc.idempotencyKey(i)
	}
	path, body := sc.path(i, u), sc.body(i, u)
	start := time.Now()
	s.start[i] = start
	// The latency includes reading the whole answer, as it would for the
	// real sender.
	status, err := snd.post(path, key, body)
	s.latency[i] = time.Since(start)
	if err != nil {
		s.fail(err)
		return
	}
	s.status[i] = status
}

func (s *sent) fail(err error) {
	s.errOnce.Do(func() { s.firstErr = err.Error() })
}

// summary counts the answers: accepted (2xx) and the rest by status
// ("no answer" for transport errors).
func (s *sent) summary() (accepted int, refused map[string]int) {
	refused = map[string]int{}
	for _, st := range s.status {
		switch {
		case st >= 200 && st < 300:
			accepted++
		case st == 0:
			refused["no answer"]++
		default:
			refused[strconv.Itoa(st)]++
		}
	}
	return accepted, refused
}

// window is when the first request began and the last answer arrived.
func (s *sent) window() (first, last time.Time) {
	for i, t := range s.start {
		if t.IsZero() {
			continue
		}
		if first.IsZero() || t.Before(first) {
			first = t
		}
		if end := t.Add(s.latency[i]); s.status[i] != 0 && end.After(last) {
			last = end
		}
	}
	return first, last
}

// acceptLatencies are the latencies of the 2xx answers.
func (s *sent) acceptLatencies() []time.Duration {
	out := make([]time.Duration, 0, len(s.status))
	for i, st := range s.status {
		if st >= 200 && st < 300 {
			out = append(out, s.latency[i])
		}
	}
	return out
}
