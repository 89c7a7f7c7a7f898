package sandbox

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/loyalty-connector/engine/engine/jsonval"
)

// journalBodyLimit is how much of each request body the journal keeps, and
// DefaultJournalBytes how much body text it keeps in all unless told: a
// million-request load test must not fill memory with bodies.
const (
	journalBodyLimit    = 64 << 10
	DefaultJournalBytes = 128 << 20
)

// DefaultJournalSize is how many requests the journal remembers; older ones
// are dropped and counted.
const DefaultJournalSize = 100_000

// defaultPage is how many requests one GET /_sandbox/requests returns
// when it gives no limit.
const defaultPage = 1000

// Entry is one request an emulator received.
type Entry struct {
	ID       int64           `json:"id"`
	Time     time.Time       `json:"time"`
	Emulator string          `json:"emulator"`
	Method   string          `json:"method"`
	Path     string          `json:"path"`
	Query    string          `json:"query,omitempty"`
	Header   json.RawMessage `json:"header"` // an object: name -> value
	Body     string          `json:"body"`
	// Truncated says the body was longer than the journal keeps.
	Truncated bool          `json:"truncated,omitempty"`
	Status    int           `json:"status"`
	Fault     string        `json:"fault,omitempty"`
	Duration  time.Duration `json:"duration_ns"`
}

// journal keeps the newest entries, at most size of them and bytes of
// body text in all, with increasing ids.
//
// The entries are kept in chunks of journalChunk: one slice for a load
// test's hundreds of thousands of requests was copied whole each time it
// grew (about 4% of the sandbox's CPU under load), and a chunk is dropped
// whole once its last entry is.
type journal struct {
	mu      sync.Mutex
	chunks  [][]Entry // oldest first; the oldest entry is chunks[0][head]
	head    int
	count   int
	size    int
	budget  int // body bytes
	bytes   int
	nextID  int64
	dropped int64
}

const journalChunk = 1024

func newJournal(size, budget int) *journal {
	if size <= 0 {
		size = DefaultJournalSize
	}
	if budget <= 0 {
		budget = DefaultJournalBytes
	}
	return &journal{size: size, budget: budget, nextID: 1}
}

// at is the i-th entry kept, oldest first.
func (j *journal) at(i int) *Entry {
	i += j.head
	return &j.chunks[i/journalChunk][i%journalChunk]
}

// add stores e, giving it the next id.
func (j *journal) add(e Entry) int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	e.ID = j.nextID
	j.nextID++
	if n := len(j.chunks); n == 0 || len(j.chunks[n-1]) == journalChunk {
		j.chunks = append(j.chunks, make([]Entry, 0, journalChunk))
	}
	last := &j.chunks[len(j.chunks)-1]
	*last = append(*last, e)
	j.count++
	j.bytes += len(e.Body)
	for j.count > 1 && (j.count > j.size || j.bytes > j.budget) {
		oldest := j.at(0)
		j.bytes -= len(oldest.Body)
		*oldest = Entry{}
		j.head++
		j.count--
		j.dropped++
		if j.head == journalChunk {
			j.chunks[0] = nil
			j.chunks = j.chunks[1:]
			j.head = 0
		}
	}
	return e.ID
}

func (j *journal) reset() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.chunks, j.head, j.count, j.bytes, j.dropped = nil, 0, 0, 0, 0
	// Ids keep increasing across resets so a client's since-id never
	// matches requests from before the reset.
}

// journalQuery selects entries: all conditions must hold.
type journalQuery struct {
	since    int64
	path     string // exact, or a prefix when it ends in "*"
	emulator string
	method   string
	limit    int
	fields   []string // only these fields of each entry, compact (nil: all, indented)
	count    bool     // only how many match
}

// entryFields are the names fields= accepts, in the order entries print.
var entryFields = []string{"id", "time", "emulator", "method", "path", "query", "header", "body", "truncated", "status", "fault", "duration_ns"}

func parseJournalQuery(q url.Values) (journalQuery, error) {
	jq := journalQuery{path: q.Get("path"), emulator: q.Get("emulator"), method: strings.ToUpper(q.Get("method"))}
	var err error
	if jq.since, err = intParam(q, "since", 0); err != nil {
		return jq, err
	}
	limit, err := intParam(q, "limit", defaultPage)
	if err != nil {
		return jq, err
	}
	jq.limit = int(limit)
	if raw := q.Get("fields"); raw != "" {
		want := map[string]bool{}
		for _, f := range strings.Split(raw, ",") {
			f = strings.TrimSpace(f)
			if !slices.Contains(entryFields, f) {
				return jq, badParam("fields", f, "a list of "+strings.Join(entryFields, ", "))
			}
			want[f] = true
		}
		for _, f := range entryFields {
			if want[f] {
				jq.fields = append(jq.fields, f)
			}
		}
	}
	if raw := q.Get("count"); raw != "" {
		if jq.count, err = strconv.ParseBool(raw); err != nil {
			return jq, badParam("count", raw, "true or false")
		}
	}
	if jq.emulator != "" && !isEmulatorName(jq.emulator) {
		return jq, badParam("emulator", jq.emulator, "one of "+strings.Join(emulatorNames, ", "))
	}
	return jq, nil
}

func (q journalQuery) matches(e *Entry) bool {
	if e.ID <= q.since || (q.emulator != "" && e.Emulator != q.emulator) || (q.method != "" && e.Method != q.method) {
		return false
	}
	return pathMatches(q.path, e.Path)
}

// pathMatches: an empty pattern matches everything, "x*" matches paths
// starting with x, anything else must be equal.
func pathMatches(pattern, path string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(path, prefix)
	}
	return pattern == "" || pattern == path
}

// journalPage is the answer of GET /_sandbox/requests. NextSince is the id
// to pass as since= to get only what arrives later.
type journalPage struct {
	Requests  []Entry `json:"requests"`
	NextSince int64   `json:"next_since"`
	Dropped   int64   `json:"dropped"`
}

// journalCount is the answer of GET /_sandbox/requests?count=true: how many
// entries match, without them, for pollers that only wait for a number.
type journalCount struct {
	Count     int   `json:"count"`
	NextSince int64 `json:"next_since"`
	Dropped   int64 `json:"dropped"`
}

func (j *journal) find(q journalQuery) journalPage {
	page := journalPage{Requests: []Entry{}}
	page.NextSince, page.Dropped = j.scan(q, func(e *Entry) bool {
		page.Requests = append(page.Requests, *e)
		return q.limit == 0 || len(page.Requests) < q.limit
	})
	return page
}

func (j *journal) countMatches(q journalQuery) journalCount {
	var c journalCount
	c.NextSince, c.Dropped = j.scan(q, func(*Entry) bool { c.Count++; return true })
	return c
}

// scan calls take with each entry q matches, oldest first, until it
// returns false, and returns the id a later poll should pass as since=.
func (j *journal) scan(q journalQuery, take func(*Entry) bool) (nextSince, dropped int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	nextSince = q.since
	// Ids are consecutive from the oldest entry kept, so a poll with
	// since= starts right after it instead of walking the whole journal.
	first := 0
	if j.count > 0 {
		first = int(min(max(q.since+1-j.at(0).ID, 0), int64(j.count)))
	}
	for i := first; i < j.count; i++ {
		e := j.at(i)
		if !q.matches(e) {
			continue
		}
		nextSince = e.ID
		if !take(e) {
			return nextSince, j.dropped
		}
	}
	// Nothing more matches up to the newest entry, so a later poll can
	// start after it.
	return max(nextSince, j.nextID-1), j.dropped
}

// journalHeaders picks the request headers worth showing, with
// credentials masked: the journal is printed and served, and the sandbox
// must not teach anyone to log an Authorization header.
// They are kept as the JSON object the journal serves, in the order
// encoding/json gives a map: a map per entry gave the garbage collector a
// journal's worth of maps to walk on every cycle (it took 14% of the
// sandbox's CPU in F2 with them, 12% without).
func journalHeaders(h http.Header) json.RawMessage {
	out := append(make([]byte, 0, 128), '{')
	for _, name := range []string{"Authorization", "Content-Type", "Idempotency-Key", "User-Agent"} {
		v := h.Get(name)
		if v == "" {
			continue
		}
		if name == "Authorization" {
			v = maskCredential(v)
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(append(append(out, '"'), name...), `":`...)
		out, _ = jsonval.Append(out, v) // a string always encodes
	}
	return append(out, '}')
}

func maskCredential(v string) string {
	if scheme, _, ok := strings.Cut(v, " "); ok {
		return scheme + " ****"
	}
	return "****"
}

// appendFields writes the page with only the given fields of each entry,
// as compact JSON: a poller that follows thousands of requests a second
// (the load test) needs neither bodies nor indentation, and encoding them
// was a tenth of the sandbox's CPU.
func (p *journalPage) appendFields(b []byte, fields []string) []byte {
	b = append(b, `{"requests":[`...)
	for i := range p.Requests {
		e := &p.Requests[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		for j, f := range fields {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(append(append(b, '"'), f...), `":`...) // names from entryFields: plain ASCII
			b = e.appendField(b, f)
		}
		b = append(b, '}')
	}
	b = append(b, `],"next_since":`...)
	b = strconv.AppendInt(b, p.NextSince, 10)
	b = append(b, `,"dropped":`...)
	b = strconv.AppendInt(b, p.Dropped, 10)
	return append(b, "}\n"...)
}

func (e *Entry) appendField(b []byte, name string) []byte {
	var v any
	switch name {
	case "id":
		return strconv.AppendInt(b, e.ID, 10)
	case "status":
		return strconv.AppendInt(b, int64(e.Status), 10)
	case "duration_ns":
		return strconv.AppendInt(b, int64(e.Duration), 10)
	case "truncated":
		return strconv.AppendBool(b, e.Truncated)
	case "time":
		b = e.Time.AppendFormat(append(b, '"'), time.RFC3339Nano)
		return append(b, '"')
	case "emulator":
		v = e.Emulator
	case "method":
		v = e.Method
	case "path":
		v = e.Path
	case "query":
		v = e.Query
	case "header":
		if len(e.Header) == 0 {
			return append(b, "null"...)
		}
		return append(b, e.Header...)
	case "body":
		v = e.Body
	case "fault":
		v = e.Fault
	}
	out, _ := json.Marshal(v)
	return append(b, out...)
}
