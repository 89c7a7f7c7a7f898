package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	brazeemu "github.com/loyalty-connector/engine/connectors/braze/emulator"
	sessionmemu "github.com/loyalty-connector/engine/connectors/sessionm/emulator"
	"github.com/loyalty-connector/engine/engine/jsonval"
)

// controlBodyLimit bounds control requests; a webhook campaign's Liquid
// body is the largest thing they carry.
const controlBodyLimit = 1 << 20

func (s *Sandbox) controlRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+controlPrefix+"/{$}", s.index)
	mux.HandleFunc("GET "+controlPrefix+"/requests", s.getRequests)
	mux.HandleFunc("GET "+controlPrefix+"/deliveries", s.getDeliveries)
	mux.HandleFunc("GET "+controlPrefix+"/faults", s.getFaults)
	mux.HandleFunc("POST "+controlPrefix+"/faults", s.postFault)
	mux.HandleFunc("DELETE "+controlPrefix+"/faults", s.deleteFaults)
	mux.HandleFunc("DELETE "+controlPrefix+"/faults/{id}", s.deleteFaults)
	mux.HandleFunc("POST "+controlPrefix+"/reset", s.postReset)
	mux.HandleFunc("POST "+controlPrefix+"/braze/webhook-campaign", s.senders.postWebhookCampaign)
	mux.HandleFunc("POST "+controlPrefix+"/sessionm/emit", s.senders.postEmit)
	mux.HandleFunc("GET "+controlPrefix+"/jobs/{id}", s.senders.getJob)
	mux.HandleFunc(controlPrefix+"/", func(w http.ResponseWriter, r *http.Request) {
		if allowed := allowedMethods(mux, r); len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s takes %s, not %s", r.URL.Path, strings.Join(allowed, " or "), r.Method))
			return
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("no control route %s %s; GET %s/ lists them", r.Method, r.URL.Path, controlPrefix))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("%s is not served here: the emulators live under %s, %s and %s, the control API under %s", r.URL.Path, coreprefix, connectPrefix, brazePrefix, controlPrefix))
	})
}

// controlRoutesDoc is what GET /_sandbox/ answers.
var controlRoutesDoc = []string{
	"GET  /_sandbox/requests?path=&since=&emulator=&method=&limit=&fields=   requests the emulators received (limit 1000 unless given; 0: all; fields=id,path,...: only those, compact)",
	"GET  /_sandbox/requests?count=true&path=&since=&emulator=&method=      how many match, without them",
	"GET  /_sandbox/deliveries[?user=ID|?limit=N]                     what each user got from Braze and holds in SessionM",
	"GET  /_sandbox/faults                                            fault rules in force",
	"POST /_sandbox/faults                                            add a rule: latency, error_ratio, drop_ratio, throttle",
	"DELETE /_sandbox/faults[/{id}]                                   remove one rule or all",
	"POST /_sandbox/reset                                             back to the seeds; empties the journal and faults",
	"POST /_sandbox/braze/webhook-campaign                            play a Braze webhook campaign to a URL",
	"POST /_sandbox/sessionm/emit                                     post SessionM events to a URL",
	"GET  /_sandbox/jobs/{id}                                         progress of an async send",
}

func (s *Sandbox) index(w http.ResponseWriter, r *http.Request) {
	base := "http://" + r.Host
	writeJSON(w, http.StatusOK, map[string]any{
		"emulators": map[string]string{
			SessionMCore:    base + coreprefix,
			SessionMConnect: base + connectPrefix,
			Braze:           base + brazePrefix,
		},
		"routes": controlRoutesDoc,
	})
}

func (s *Sandbox) getRequests(w http.ResponseWriter, r *http.Request) {
	if err := onlyParams(r.URL.Query(), "requests", journalParams); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	q, err := parseJournalQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if q.count {
		writeJSON(w, http.StatusOK, s.journal.countMatches(q))
		return
	}
	page := s.journal.find(q)
	if q.fields == nil {
		writeJSON(w, http.StatusOK, page)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(page.appendFields(nil, q.fields))
}

func (s *Sandbox) getDeliveries(w http.ResponseWriter, r *http.Request) {
	if err := onlyParams(r.URL.Query(), "deliveries", deliveriesParams); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	user := r.URL.Query().Get("user")
	if user == "" {
		limit, err := intParam(r.URL.Query(), "limit", defaultPage)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		sm, smTotal := firstN(s.sessionm.AllDeliveries(), int(limit))
		br, brTotal := firstN(s.braze.AllDeliveries(), int(limit))
		writeJSON(w, http.StatusOK, map[string]any{
			"sessionm": sm, "sessionm_users": smTotal,
			"braze": br, "braze_users": brTotal,
		})
		return
	}
	sm, inSessionM := s.sessionm.Deliveries(user)
	br, inBraze := s.braze.Deliveries(user)
	if d, ok := sm.(sessionmemu.Delivery); ok && !inBraze && d.ExternalID != nil {
		// Asked by SessionM id (or another external id): the Braze user
		// is the one of the SessionM user's external id, which Braze's
		// external_id is. Only SessionM's side was shown (a QA run).
		br, inBraze = s.braze.Deliveries(*d.ExternalID)
	}
	if !inSessionM && !inBraze {
		writeError(w, http.StatusNotFound, fmt.Sprintf("neither emulator knows user %q (a SessionM id, an external id or a Braze external_id)", user))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": user, "sessionm": sm, "braze": br})
}

func (s *Sandbox) getFaults(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"faults": s.faults.list()})
}

func (s *Sandbox) postFault(w http.ResponseWriter, r *http.Request) {
	var f Fault
	if !decodeControl(w, r, &f) {
		return
	}
	added, err := s.faults.add(f)
	if err != nil {
		writeError(w, http.StatusBadRequest, "fault: "+err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, added)
}

func (s *Sandbox) deleteFaults(w http.ResponseWriter, r *http.Request) {
	var id int64
	if raw := r.PathValue("id"); raw != "" {
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || n <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("fault id %q is not a positive number", raw))
			return
		}
		id = n
		if !s.faults.remove(id) {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no fault rule %d", id))
			return
		}
	} else {
		s.faults.remove(0)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sandbox) postReset(w http.ResponseWriter, r *http.Request) {
	s.Reset()
	w.WriteHeader(http.StatusNoContent)
}

// decodeControl reads a JSON control request strictly, answering 400 with
// the reason when it cannot.
func decodeControl(w http.ResponseWriter, r *http.Request, into any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, controlBodyLimit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("control requests are limited to %d bytes", controlBodyLimit))
			return false
		}
		writeError(w, http.StatusBadRequest, "request body: "+jsonval.Problem(err))
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "request body: one JSON object expected, found more after it")
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func intParam(q url.Values, name string, def int64) (int64, error) {
	raw := q.Get(name)
	if raw == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < 0 {
		return 0, badParam(name, raw, "a whole number, 0 or more")
	}
	return n, nil
}

// The query parameters of the control API's GET routes.
var (
	journalParams    = []string{"since", "path", "emulator", "method", "limit", "fields", "count"}
	deliveriesParams = []string{"user", "limit"}
)

// onlyParams refuses a parameter the route does not take, and one given
// twice: a misspelt filter (pth=/braze/*) selected everything, and the
// poller counted requests it did not mean.
func onlyParams(q url.Values, route string, allowed []string) error {
	for _, name := range slices.Sorted(maps.Keys(q)) { // the same one named each time
		values := q[name]
		if !slices.Contains(allowed, name) {
			return fmt.Errorf("unknown query parameter %s=; %s takes %s", name, route, strings.Join(allowed, "=, ")+"=")
		}
		if len(values) > 1 {
			return fmt.Errorf("query parameter %s= is given %d times; give it once", name, len(values))
		}
	}
	return nil
}

func badParam(name, value, want string) error {
	return fmt.Errorf("query parameter %s=%q: expected %s", name, value, want)
}

// firstN shortens a list of deliveries to n (0: all) and says how long it
// was; the emulators return slices of their own delivery types.
func firstN(list any, n int) (any, int) {
	switch l := list.(type) {
	case []sessionmemu.Delivery:
		if n > 0 && len(l) > n {
			return l[:n], len(l)
		}
		return l, len(l)
	case []brazeemu.Delivery:
		if n > 0 && len(l) > n {
			return l[:n], len(l)
		}
		return l, len(l)
	}
	return list, -1
}

// allowedMethods lists the methods another route of mux serves r's path
// with; the catch-all routes do not count.
func allowedMethods(mux *http.ServeMux, r *http.Request) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "" && pattern != controlPrefix+"/" && pattern != "/" {
			out = append(out, m)
		}
	}
	return out
}
