package sandbox

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/delivery"
	"github.com/loyalty-connector/engine/internal/ids"
)

// retryPolicy is how a sender retries: Retries more attempts after the
// first, waiting First, then twice as long each time, or longer when the
// receiver's Retry-After asks for it, all inside Within (0: no bound).
type retryPolicy struct {
	Retries int
	First   time.Duration
	Within  time.Duration
}

// Braze retries webhooks "up to 5 times within 30 minutes, with exponential
// backoff" (braze.md §4). The intervals are not published; ours (A) are
// 30 s doubling to 8 min, 15.5 minutes in all, inside the 30; a longer
// Retry-After is honoured only up to the end of the 30 minutes.
var brazeWebhookRetries = retryPolicy{Retries: 5, First: 30 * time.Second, Within: 30 * time.Minute}

// SessionM publishes no policy for its outbound calls (sessionm.md §5, §7);
// ours (A): 3 retries from 1 s, on the same statuses as Braze, within an
// hour.
var sessionmEventRetries = retryPolicy{Retries: 3, First: time.Second, Within: time.Hour}

// brazeWebhookTimeout is Braze's per-webhook timeout (braze.md §4).
const brazeWebhookTimeout = 90 * time.Second

// retryable says whether a sender tries again after this answer: 408, 429
// and 5xx yes; redirects and other 4xx no (braze.md §4).
func retryable(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}

// Attempt is one try of one outbound request.
type Attempt struct {
	Status int    `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
	// Waited is the (scaled) pause before this attempt.
	Waited Duration `json:"waited,omitempty"`
}

// Delivery is what happened to one outbound request.
type Delivery struct {
	User      string    `json:"user"`
	URL       string    `json:"url,omitempty"`
	Delivered bool      `json:"delivered"`
	Reason    string    `json:"reason,omitempty"`
	Attempts  []Attempt `json:"attempts"`
}

type outbound struct {
	user string
	// failed, when set, is why the request could not be built; it is
	// reported instead of sent.
	failed string
	method string
	url    string
	header http.Header
	body   []byte
}

// senders plays Braze webhook campaigns and SessionM events.
type senders struct {
	sb        *Sandbox
	client    *http.Client
	sleep     func(ctx context.Context, d time.Duration) error
	userAgent string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	stopping bool
	jobs     map[string]*job
	jobOrder []string
}

// keptJobs bounds how many finished jobs GET /_sandbox/jobs can still show.
const keptJobs = 100

func newSenders(sb *Sandbox, client *http.Client, sleep func(context.Context, time.Duration) error) *senders {
	if client == nil {
		client = &http.Client{
			// Braze does not follow a webhook's redirects (braze.md §4).
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport:     &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second},
		}
	}
	if sleep == nil {
		sleep = delivery.RealClock{}.Sleep
	}
	ctx, cancel := context.WithCancel(context.Background())
	// Braze's agent is "Braze Sender <hash>" with a hash that changes
	// (braze.md §4); ours changes with each sandbox.
	sum := sha1.Sum([]byte(ids.NewUUID()))
	return &senders{
		sb: sb, client: client, sleep: sleep,
		userAgent: "Braze Sender " + hex.EncodeToString(sum[:]),
		ctx:       ctx, cancel: cancel,
		jobs: map[string]*job{},
	}
}

// cancelAll refuses new jobs and cancels the running ones.
func (sd *senders) cancelAll() {
	sd.mu.Lock()
	sd.stopping = true
	sd.mu.Unlock()
	sd.cancel()
}

// stop cancels the running jobs and waits for them.
func (sd *senders) stop() {
	sd.cancelAll()
	sd.wg.Wait()
}

// deliver sends one request, retrying per p; waits are multiplied by
// timeScale so tests need not wait minutes.
func (sd *senders) deliver(ctx context.Context, out outbound, p retryPolicy, timeScale float64, timeout time.Duration) Delivery {
	d := Delivery{User: out.user, URL: out.url, Attempts: []Attempt{}}
	if out.failed != "" {
		d.Reason = out.failed
		return d
	}
	wait := time.Duration(0)
	var spent time.Duration // unscaled, against p.Within
	for attempt := 0; attempt <= p.Retries; attempt++ {
		if attempt > 0 {
			if err := sd.sleep(ctx, wait); err != nil {
				d.Reason = "stopped before retrying: " + err.Error()
				return d
			}
		}
		a, retryAfter := sd.try(ctx, out, timeout)
		a.Waited = Duration(wait)
		d.Attempts = append(d.Attempts, a)
		switch {
		case a.Error == "" && a.Status >= 200 && a.Status < 300:
			d.Delivered = true
			return d
		case a.Error == "" && !retryable(a.Status):
			d.Reason = fmt.Sprintf("HTTP %d is not retried", a.Status)
			return d
		}
		next := max(p.First<<attempt, retryAfter)
		if p.Within > 0 && spent+next > p.Within {
			if spent >= p.Within || attempt == p.Retries {
				break
			}
			next = p.Within - spent
		}
		spent += next
		wait = time.Duration(float64(next) * timeScale)
	}
	last := d.Attempts[len(d.Attempts)-1]
	d.Reason = fmt.Sprintf("gave up after %d attempts", len(d.Attempts))
	if last.Error != "" {
		d.Reason += ": " + last.Error
	} else {
		d.Reason += fmt.Sprintf(": HTTP %d", last.Status)
	}
	return d
}

func (sd *senders) try(ctx context.Context, out outbound, timeout time.Duration) (Attempt, time.Duration) {
	resp, err := engine.HTTPCaller{Client: sd.client, Timeout: timeout}.Call(ctx, nil, &engine.Request{Method: out.method, URL: out.url, Header: out.header, Body: out.body})
	if err != nil {
		return Attempt{Error: err.Error()}, 0
	}
	return Attempt{Status: resp.Status}, delivery.RetryAfter(resp.Header.Get("Retry-After"), sd.sb.now())
}

// job is one send to many users, run in the background and polled at
// GET /_sandbox/jobs/{id} (or waited for by the request that made it).
type job struct {
	mu     sync.Mutex
	status JobStatus
	done   chan struct{}
}

// JobStatus is the answer for a send: counts, the failures, and, when
// asked for, every delivery.
type JobStatus struct {
	ID         string     `json:"id"`
	Kind       string     `json:"kind"`
	State      string     `json:"state"` // running, done, stopped
	Total      int        `json:"total"`
	Done       int        `json:"done"`
	Delivered  int        `json:"delivered"`
	Failed     int        `json:"failed"`
	Retries    int        `json:"retries"`
	Started    time.Time  `json:"started"`
	Finished   *time.Time `json:"finished,omitempty"`
	Failures   []Delivery `json:"failures"`
	Deliveries []Delivery `json:"deliveries,omitempty"`
	// FailuresDropped counts failures past the listing limit.
	FailuresDropped int `json:"failures_dropped,omitempty"`
}

// listedFailures bounds the failures a job lists, and listedDeliveries
// the deliveries it lists when asked for details, so a job over a large
// segment stays small.
const (
	listedFailures   = 100
	listedDeliveries = 10_000
)

func (j *job) record(d Delivery, details bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.status.Done++
	j.status.Retries += max(0, len(d.Attempts)-1)
	if d.Delivered {
		j.status.Delivered++
	} else {
		j.status.Failed++
		if len(j.status.Failures) < listedFailures {
			j.status.Failures = append(j.status.Failures, d)
		} else {
			j.status.FailuresDropped++
		}
	}
	if details && len(j.status.Deliveries) < listedDeliveries {
		j.status.Deliveries = append(j.status.Deliveries, d)
	}
}

func (j *job) snapshot() JobStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.status
	s.Failures = append([]Delivery{}, s.Failures...)
	if s.Deliveries != nil {
		s.Deliveries = append([]Delivery(nil), s.Deliveries...)
	}
	return s
}

// sendOptions are the fields every send request shares.
type sendOptions struct {
	// TimeScale multiplies every retry wait (and Retry-After): 0.001 turns
	// Braze's minutes into tenths of a second. Default 1.
	TimeScale float64 `json:"time_scale,omitempty"`
	// Concurrency is how many requests are in flight at once (default 8).
	Concurrency int `json:"concurrency,omitempty"`
	// Async answers 202 with the job at once instead of waiting for it.
	Async bool `json:"async,omitempty"`
	// Details lists every delivery in the answer, not only failures.
	Details bool `json:"details,omitempty"`
}

func (o *sendOptions) check() []string {
	var problems []string
	if o.TimeScale == 0 {
		o.TimeScale = 1
	}
	if o.TimeScale < 0 || o.TimeScale > 1000 {
		problems = append(problems, fmt.Sprintf("time_scale must be above 0 and at most 1000, not %v", o.TimeScale))
	}
	if o.Concurrency == 0 {
		o.Concurrency = 8
	}
	if o.Concurrency < 0 || o.Concurrency > 256 {
		problems = append(problems, fmt.Sprintf("concurrency must be between 1 and 256, not %d", o.Concurrency))
	}
	return problems
}

// run starts a job over the prepared requests and answers w: at once with
// 202 when async, otherwise when every request is settled.
func (sd *senders) run(w http.ResponseWriter, r *http.Request, kind string, outs []outbound, p retryPolicy, timeout time.Duration, o sendOptions) {
	j := &job{done: make(chan struct{}), status: JobStatus{
		ID: ids.NewUUID(), Kind: kind, State: "running", Total: len(outs), Started: sd.sb.now(), Failures: []Delivery{},
	}}
	sd.mu.Lock()
	if sd.stopping {
		sd.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, "the sandbox is stopping")
		return
	}
	sd.jobs[j.status.ID] = j
	sd.jobOrder = append(sd.jobOrder, j.status.ID)
	sd.forgetFinishedLocked()
	// Added under the lock that stop takes, so Add never races Wait.
	sd.wg.Add(1)
	sd.mu.Unlock()

	go func() {
		defer sd.wg.Done()
		defer close(j.done)
		// Each user's requests go through one worker, so they arrive in
		// the order given, retries included, as the engine's order_by
		// expects of a sender; requests that name no user go to any.
		n := min(o.Concurrency, max(1, len(outs)))
		anyWorker := make(chan outbound)
		own := make([]chan outbound, n)
		var workers sync.WaitGroup
		for i := range own {
			own[i] = make(chan outbound)
			workers.Add(1)
			go func() {
				defer workers.Done()
				for {
					var out outbound
					var ok bool
					select {
					case out, ok = <-own[i]:
					case out, ok = <-anyWorker:
					}
					if !ok {
						return
					}
					j.record(sd.deliver(sd.ctx, out, p, o.TimeScale, timeout), o.Details)
				}
			}()
		}
	feed:
		for _, out := range outs {
			work := anyWorker
			if out.user != "" {
				work = own[workerOf(out.user, n)]
			}
			select {
			case work <- out:
			case <-sd.ctx.Done():
				break feed
			}
		}
		// Every send above was taken (the channels hold nothing), so a
		// worker may stop at the first closed channel it sees.
		close(anyWorker)
		for _, c := range own {
			close(c)
		}
		workers.Wait()
		j.mu.Lock()
		finished := sd.sb.now()
		j.status.Finished = &finished
		j.status.State = "done"
		if sd.ctx.Err() != nil {
			j.status.State = "stopped"
		}
		j.mu.Unlock()
	}()

	if o.Async {
		writeJSON(w, http.StatusAccepted, j.snapshot())
		return
	}
	select {
	case <-j.done:
		writeJSON(w, http.StatusOK, j.snapshot())
	case <-r.Context().Done():
		// The caller went away; the job goes on and can be polled.
	}
}

// workerOf is the worker, of n, that sends every request of user.
func workerOf(user string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(user))
	return int(h.Sum32() % uint32(n))
}

// forgetFinishedLocked keeps at most keptJobs jobs, dropping the oldest
// finished ones; running jobs are kept whatever their number. Callers hold
// sd.mu.
func (sd *senders) forgetFinishedLocked() {
	for i := 0; len(sd.jobOrder) > keptJobs && i < len(sd.jobOrder); {
		id := sd.jobOrder[i]
		select {
		case <-sd.jobs[id].done:
			delete(sd.jobs, id)
			sd.jobOrder = append(sd.jobOrder[:i], sd.jobOrder[i+1:]...)
		default:
			i++
		}
	}
}

func (sd *senders) getJob(w http.ResponseWriter, r *http.Request) {
	sd.mu.Lock()
	j := sd.jobs[r.PathValue("id")]
	sd.mu.Unlock()
	if j == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no job %q (the last %d are kept)", r.PathValue("id"), keptJobs))
		return
	}
	writeJSON(w, http.StatusOK, j.snapshot())
}

// checkTargetURL accepts absolute http(s) URLs. Braze itself only calls
// ports 80 and 443 (braze.md §4); the sandbox allows any port, because the
// engine under test listens on loopback ports.
func checkTargetURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http:// or https:// URL", raw)
	}
	return nil
}

// headerFrom copies user-given headers, refusing line breaks.
func headerFrom(h map[string]string) (http.Header, error) {
	out := http.Header{}
	for k, v := range h {
		if k == "" || strings.ContainsAny(k, "\r\n: ") || strings.ContainsAny(v, "\r\n") {
			return nil, fmt.Errorf("header %q: names cannot be empty or hold spaces or colons, and values cannot hold line breaks", k)
		}
		out.Set(k, v)
	}
	return out, nil
}

// inferContentType mirrors Braze's API-defined webhooks, which get a
// Content-Type inferred from the body when none is given
// (braze.md §4): JSON when it parses, plain text otherwise (A).
func inferContentType(body []byte) string {
	if json.Valid(body) {
		return "application/json"
	}
	return "text/plain; charset=utf-8"
}
