package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Fault is one rule of POST /_sandbox/faults: what goes wrong, for which
// requests. Every matching rule applies, in the order they were added:
// latency first, then a dropped connection, a 429 burst, an error status.
type Fault struct {
	ID int64 `json:"id"`
	// Emulator limits the rule to sessionm_core, sessionm_connect or braze;
	// empty means all three.
	Emulator string `json:"emulator,omitempty"`
	// Path is the full request path (/braze/campaigns/trigger/send), or a
	// prefix ending in "*"; empty means every path.
	Path   string `json:"path,omitempty"`
	Method string `json:"method,omitempty"`
	// Latency delays the answer.
	Latency Duration `json:"latency,omitempty"`
	// ErrorRatio (0..1) of matching requests get ErrorStatus (default 503;
	// any 4xx or 5xx but 429) in the emulator's error envelope.
	ErrorRatio  float64 `json:"error_ratio,omitempty"`
	ErrorStatus int     `json:"error_status,omitempty"`
	// DropRatio (0..1) of matching requests have their connection closed
	// with no answer at all.
	DropRatio float64 `json:"drop_ratio,omitempty"`
	// Throttle answers 429 with Retry-After in bursts.
	Throttle *Throttle `json:"throttle,omitempty"`
	// Count, when set, retires the rule after it has matched that many
	// requests. Remaining reports how many are left.
	Count     int `json:"count,omitempty"`
	Remaining int `json:"remaining,omitempty"`

	burstStart time.Time // zero: no burst has started
}

// Throttle: the first matching request opens a burst lasting For, during
// which every matching request gets 429 and a Retry-After pointing at the
// burst's end; the next burst opens at the first request Every after the
// last one began (Every 0: only one burst).
type Throttle struct {
	For   Duration `json:"for"`
	Every Duration `json:"every,omitempty"`
}

// Duration reads "250ms", "2s" in JSON and writes the same form.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`a duration is a string such as "250ms" or "2s"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("%q is not a duration such as \"250ms\" or \"2s\"", s)
	}
	*d = Duration(v)
	return nil
}

func (f *Fault) validate() error {
	var problems []string
	if f.Emulator != "" && !isEmulatorName(f.Emulator) {
		problems = append(problems, fmt.Sprintf("emulator %q is not one of %s", f.Emulator, strings.Join(emulatorNames, ", ")))
	}
	if f.Path != "" && !strings.HasPrefix(f.Path, "/") {
		problems = append(problems, fmt.Sprintf("path %q must start with / (the full path, such as /braze/users/track)", f.Path))
	} else if f.Path != "" {
		problems = append(problems, pathProblems(f.Path, f.Emulator)...)
	}
	for name, r := range map[string]float64{"error_ratio": f.ErrorRatio, "drop_ratio": f.DropRatio} {
		if r < 0 || r > 1 || math.IsNaN(r) {
			problems = append(problems, fmt.Sprintf("%s must be between 0 and 1, not %v", name, r))
		}
	}
	if f.ErrorStatus == 0 && f.ErrorRatio > 0 {
		f.ErrorStatus = http.StatusServiceUnavailable
	}
	// A 4xx tests what a refusal does (a dead letter at once); a 429 is
	// throttle's, which sends the Retry-After a 429 needs.
	if s := f.ErrorStatus; s != 0 && (s < 400 || s > 599 || s == http.StatusTooManyRequests) {
		problems = append(problems, fmt.Sprintf("error_status must be a 4xx or 5xx status other than 429 (use throttle for 429s), not %d", s))
	}
	if f.Throttle != nil && f.Throttle.For <= 0 {
		problems = append(problems, `throttle needs "for", the length of each 429 burst`)
	}
	if t := f.Throttle; t != nil && t.Every > 0 && t.Every <= t.For {
		// A burst would open as the last ends: 429 for ever, while each
		// Retry-After promised an end (a QA run).
		problems = append(problems, fmt.Sprintf(`throttle's "every" (%s) must be longer than its "for" (%s), or left out for one burst`, time.Duration(t.Every), time.Duration(t.For)))
	}
	if f.Count < 0 {
		problems = append(problems, "count cannot be negative")
	}
	if f.Latency == 0 && f.ErrorRatio == 0 && f.DropRatio == 0 && f.Throttle == nil {
		problems = append(problems, "the fault does nothing: set latency, error_ratio, drop_ratio or throttle")
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	f.Method = strings.ToUpper(f.Method)
	f.Remaining = f.Count
	return nil
}

// emulatorPrefixes are the paths each emulator serves under.
var emulatorPrefixes = map[string]string{Braze: brazePrefix + "/", SessionMCore: coreprefix + "/", SessionMConnect: connectPrefix + "/"}

// pathProblems says why a fault's path can never match a request of
// emulator (any, when ""): each was taken, and the fault did nothing
// (a QA run).
func pathProblems(path, emulator string) []string {
	var problems []string
	if strings.ContainsAny(path, "?#") {
		problems = append(problems, fmt.Sprintf("path %q holds a query: a fault matches the path alone", path))
	}
	if i := strings.IndexByte(path, '*'); i >= 0 && i != len(path)-1 {
		problems = append(problems, fmt.Sprintf("path %q has a * before its end: * matches only at the end, as a prefix (/braze/users/*)", path))
	}
	if strings.HasPrefix(path, "/_sandbox") {
		return append(problems, "the control API (/_sandbox/...) is never faulted: give an emulator's path")
	}
	canMatch := func(prefix string) bool {
		if p, wild := strings.CutSuffix(path, "*"); wild {
			return strings.HasPrefix(p, prefix) || strings.HasPrefix(prefix, p)
		}
		return strings.HasPrefix(path, prefix)
	}
	switch {
	case !slices.ContainsFunc(emulatorNames, func(name string) bool { return canMatch(emulatorPrefixes[name]) }):
		problems = append(problems, fmt.Sprintf("path %q is under no emulator's (paths are case-sensitive): /braze/..., /sessionm/core/... or /sessionm/connect/...", path))
	case emulator != "" && !canMatch(emulatorPrefixes[emulator]): // an unknown one is reported apart
		problems = append(problems, fmt.Sprintf("path %q is not under emulator %s's (%s...): the fault would match nothing; leave one of them out", path, emulator, emulatorPrefixes[emulator]))
	}
	return problems
}

func (f *Fault) matches(emulator string, r *http.Request) bool {
	return (f.Emulator == "" || f.Emulator == emulator) &&
		(f.Method == "" || f.Method == r.Method) &&
		pathMatches(f.Path, r.URL.Path)
}

// verdict is what the faults decided for one request.
type verdict struct {
	latency    time.Duration
	drop       bool
	status     int           // 0: let the emulator answer
	retryAfter time.Duration // with status 429
	reason     string
}

type faultSet struct {
	mu     sync.Mutex
	rules  []*Fault
	nextID int64
	rand   *rand.Rand
}

func newFaultSet(seed uint64) *faultSet {
	return &faultSet{nextID: 1, rand: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// maxFaultRules bounds the rule list, which every emulator request
// walks: a script that added rules in a loop without deleting them made
// each request slower (100,000 rules: 6 ms and 60 MB).
const maxFaultRules = 1000

func (fs *faultSet) add(f Fault) (Fault, error) {
	if err := f.validate(); err != nil {
		return Fault{}, err
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if len(fs.rules) >= maxFaultRules {
		return Fault{}, fmt.Errorf("there are %d rules already, the most the sandbox keeps; remove some with DELETE /_sandbox/faults/{id}, or all with DELETE /_sandbox/faults", len(fs.rules))
	}
	f.ID = fs.nextID
	fs.nextID++
	fs.rules = append(fs.rules, &f)
	return f, nil
}

func (fs *faultSet) list() []Fault {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := make([]Fault, 0, len(fs.rules))
	for _, f := range fs.rules {
		out = append(out, *f)
	}
	return out
}

// remove drops one rule (id > 0) or all of them; it reports whether any
// rule went.
func (fs *faultSet) remove(id int64) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if id == 0 {
		had := len(fs.rules) > 0
		fs.rules = nil
		return had
	}
	for i, f := range fs.rules {
		if f.ID == id {
			fs.rules = append(fs.rules[:i], fs.rules[i+1:]...)
			return true
		}
	}
	return false
}

// decide applies every matching rule to one request at time now.
func (fs *faultSet) decide(emulator string, r *http.Request, now time.Time) verdict {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var v verdict
	kept := fs.rules[:0]
	for _, f := range fs.rules {
		if !f.matches(emulator, r) {
			kept = append(kept, f)
			continue
		}
		v.latency += time.Duration(f.Latency)
		if v.status == 0 && !v.drop {
			fs.apply(f, &v, now)
		}
		if f.Count > 0 {
			f.Remaining--
			if f.Remaining == 0 {
				continue // retired
			}
		}
		kept = append(kept, f)
	}
	clear(fs.rules[len(kept):])
	fs.rules = kept
	return v
}

func (fs *faultSet) apply(f *Fault, v *verdict, now time.Time) {
	if f.DropRatio > 0 && fs.rand.Float64() < f.DropRatio {
		v.drop, v.reason = true, fmt.Sprintf("fault %d: connection dropped", f.ID)
		return
	}
	if t := f.Throttle; t != nil {
		burstFor := time.Duration(t.For)
		inBurst := !f.burstStart.IsZero() && now.Before(f.burstStart.Add(burstFor))
		nextBurstDue := f.burstStart.IsZero() || (t.Every > 0 && !now.Before(f.burstStart.Add(time.Duration(t.Every))))
		if !inBurst && nextBurstDue {
			f.burstStart, inBurst = now, true
		}
		if inBurst {
			v.status, v.retryAfter = http.StatusTooManyRequests, f.burstStart.Add(burstFor).Sub(now)
			v.reason = fmt.Sprintf("fault %d: 429 burst", f.ID)
			return
		}
	}
	if f.ErrorRatio > 0 && fs.rand.Float64() < f.ErrorRatio {
		v.status, v.reason = f.ErrorStatus, fmt.Sprintf("fault %d: HTTP %d", f.ID, f.ErrorStatus)
	}
}

// retryAfterSeconds rounds up, so a client that waits what the header says
// arrives after the burst has ended, never during it.
func retryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(d.Seconds()))), 10)
}
