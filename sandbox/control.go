package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
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
		writeError(w, http.StatusNotFound, fmt.Sprintf("no control route %s %s; GET %s/ lists them", r.Method, r.URL.Path, controlPrefix))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("%s is not served here: the emulators live under %s, %s and %s, the control API under %s", r.URL.Path, coreprefix, connectPrefix, brazePrefix, controlPrefix))
	})
}

// controlRoutesDoc is what GET /_sandbox/ answers.
var controlRoutesDoc = []string{
	"GET  /_sandbox/requests?path=&since=&emulator=&method=&limit=   requests the emulators received",
	"GET  /_sandbox/deliveries[?user=ID]                              what each user got from Braze and holds in SessionM",
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
	q, err := parseJournalQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, s.journal.find(q))
}

func (s *Sandbox) getDeliveries(w http.ResponseWriter, r *http.Request) {
	user := r.URL.Query().Get("user")
	if user == "" {
		writeJSON(w, http.StatusOK, map[string]any{
			"sessionm": s.sessionm.AllDeliveries(),
			"braze":    s.braze.AllDeliveries(),
		})
		return
	}
	sm, inSessionM := s.sessionm.Deliveries(user)
	br, inBraze := s.braze.Deliveries(user)
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
		writeError(w, http.StatusBadRequest, "request body: "+jsonProblem(err))
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "request body: one JSON object expected, found more after it")
		return false
	}
	return true
}

// jsonProblem words a decoding error without Go type names.
func jsonProblem(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return fmt.Sprintf("expected %s, got a JSON %s", describeKind(typeErr.Type.Kind().String()), typeErr.Value)
		}
		return fmt.Sprintf("%s: expected %s, got a JSON %s", field, describeKind(typeErr.Type.Kind().String()), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("invalid JSON at byte %d: %s", syntaxErr.Offset, syntaxErr.Error())
	case errors.Is(err, io.EOF):
		return "empty; a JSON object is expected"
	}
	return err.Error()
}

func describeKind(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "int", "int64", "float64", "int32":
		return "a number"
	case "slice":
		return "a list"
	case "map", "struct":
		return "an object"
	}
	return kind
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

func badParam(name, value, want string) error {
	return fmt.Errorf("query parameter %s=%q: expected %s", name, value, want)
}
