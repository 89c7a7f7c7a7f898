// Package dryrun runs events through a pipeline without sending anything:
// it shows the filter's verdict, each lookup with the response it used, and
// the exact requests the engine would send, secrets masked.
package dryrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/loyalty-connector/engine/connectors/csvfile"
	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/jsonval"
	"github.com/loyalty-connector/engine/engine/secrets"
	"github.com/loyalty-connector/engine/engine/spec"
)

// Runner dry-runs one pipeline.
type Runner struct {
	Pipeline *engine.Pipeline
	// Fixtures is a folder holding, for each lookup step, STEP.json: the
	// response body that step gets.
	Fixtures string
	// Lookups, when set, answers lookups instead of the fixtures (the
	// sandbox's emulators over HTTP, for engine dry-run --sandbox).
	Lookups engine.Caller
	Now     time.Time
	// Masker, when set, is given the value of each credential header a
	// request carries, so that the report masks it wherever else it
	// shows, such as the step that built it (a review).
	Masker *secrets.Masker
}

// Report is the dry run of one event. Its JSON form is what
// `engine dry-run --format json` prints.
type Report struct {
	Pipeline      string        `json:"pipeline"`
	Version       string        `json:"version"`
	Input         string        `json:"input"`
	Row           *Row          `json:"row,omitempty"`
	Filtered      bool          `json:"filtered"`
	FilterExplain string        `json:"filter_explanation,omitempty"`
	Lookups       []Lookup      `json:"lookups"`
	Requests      []HTTPRequest `json:"requests"`
	Response      *HTTPReply    `json:"response,omitempty"`
	Errors        []string      `json:"errors"`
	// Warnings say what may not be what was meant, though it runs (a CSV
	// row that runs over lines that look like rows).
	Warnings []string `json:"warnings,omitempty"`
}

// Row locates a CSV row.
type Row struct {
	Number int `json:"number"`
	Line   int `json:"line"`
}

// Lookup is one step: a call with the response it used, or a computed value.
type Lookup struct {
	Step     string          `json:"step"`
	Request  *HTTPRequest    `json:"request,omitempty"`
	Response *LookupResponse `json:"response,omitempty"`
	Value    any             `json:"value,omitempty"`
	Error    string          `json:"error,omitempty"`
}

// LookupResponse is the response a lookup used.
type LookupResponse struct {
	Status int    `json:"status"`
	From   string `json:"from"`
	Body   any    `json:"body"`
}

// HTTPRequest is a request as it would go on the wire.
type HTTPRequest struct {
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
	Body    any               `json:"body,omitempty"`
}

// HTTPReply is the answer a synchronous pipeline would give.
type HTTPReply struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    any               `json:"body,omitempty"`
}

// Input is an HTTP request for a webhook source.
type Input struct {
	File    string // where the body came from, for the report
	Body    []byte
	Path    string // request path; "" picks the source's only fixed path
	Query   url.Values
	Headers http.Header
}

// Event dry-runs one webhook request.
func (r *Runner) Event(ctx context.Context, in Input) *Report {
	rep := r.newReport(in.File)
	ev, err := r.httpEvent(in)
	if err != nil {
		rep.Errors = append(rep.Errors, err.Error())
		return rep
	}
	r.evaluate(ctx, ev, rep)
	return rep
}

// CSVReport is the dry run of a CSV file.
type CSVReport struct {
	Pipeline string    `json:"pipeline"`
	Version  string    `json:"version"`
	File     string    `json:"file"`
	Rows     []*Report `json:"rows"`
	Errors   []string  `json:"errors"`
	// Warnings are of the file as a whole (a column named Tag where the
	// pipeline reads tag); a row's are under the row.
	Warnings []string `json:"warnings,omitempty"`
}

// CSV dry-runs the first maxRows rows of a CSV file (all rows when maxRows
// is 0). Broken rows are reported and do not stop the run.
func (r *Runner) CSV(ctx context.Context, file string, maxRows int) *CSVReport {
	rep := &CSVReport{Pipeline: r.Pipeline.Name, Version: r.Pipeline.Version, File: file, Rows: []*Report{}, Errors: []string{}}
	f, err := os.Open(file)
	if err != nil {
		rep.Errors = append(rep.Errors, fmt.Sprintf("cannot open the CSV file: %v", err))
		return rep
	}
	defer f.Close()
	reader, err := csvfile.NewReader(f, file, r.Pipeline.Source.Delimiter)
	if err == nil {
		err = reader.Expect(r.Pipeline.EventReads) // as engine run checks it
	}
	if err != nil {
		rep.Errors = append(rep.Errors, err.Error())
		return rep
	}
	rep.Warnings = reader.NearMisses(r.Pipeline.EventReads)
	for maxRows <= 0 || len(rep.Rows) < maxRows {
		row, err := reader.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var rowErr *csvfile.RowError
		if errors.As(err, &rowErr) {
			one := r.newReport(file)
			one.Row = &Row{rowErr.Number, rowErr.Line}
			one.Errors = append(one.Errors, rowErr.Error())
			rep.Rows = append(rep.Rows, one)
			continue
		}
		if err != nil {
			rep.Errors = append(rep.Errors, err.Error())
			break
		}
		one := r.newReport(file)
		one.Row = &Row{row.Number, row.Line}
		if row.Warning != "" {
			one.Warnings = append(one.Warnings, row.Warning)
		}
		r.evaluate(ctx, &engine.Event{Data: row.Values, Row: &engine.RowInfo{Number: row.Number, File: file}}, one)
		rep.Rows = append(rep.Rows, one)
	}
	return rep
}

func (r *Runner) newReport(input string) *Report {
	return &Report{Pipeline: r.Pipeline.Name, Version: r.Pipeline.Version, Input: input, Lookups: []Lookup{}, Requests: []HTTPRequest{}, Errors: []string{}}
}

func (r *Runner) evaluate(ctx context.Context, ev *engine.Event, rep *Report) {
	var lookups engine.Caller = fixtureCaller{r.Fixtures}
	if r.Lookups != nil {
		lookups = r.Lookups
	}
	out := r.Pipeline.Evaluate(ctx, ev, lookups, r.Now)
	rep.Filtered = !out.Passed && out.Err == nil
	rep.FilterExplain = out.FilterExplain
	for _, s := range out.Steps {
		l := Lookup{Step: s.Step}
		if s.Request != nil {
			l.Request = r.wireRequest(s.Request)
			if s.Response != nil {
				body, err := jsonval.Decode(s.Response.Body)
				if err != nil {
					body = string(s.Response.Body)
				}
				l.Response = &LookupResponse{Status: s.Response.Status, From: s.Response.From, Body: body}
			}
		} else {
			l.Value = s.Value
		}
		if s.Err != nil {
			l.Error = s.Err.Error()
		}
		rep.Lookups = append(rep.Lookups, l)
	}
	if out.Request != nil {
		rep.Requests = append(rep.Requests, *r.wireRequest(out.Request))
	}
	if out.Reply != nil {
		rep.Response = &HTTPReply{Status: out.Reply.Status, Headers: flatHeaders(out.Reply.Header), Body: bodyOf(out.Reply.Body, out.Reply.Value)}
	}
	switch {
	case out.Err != nil && r.Pipeline.Respond != nil && out.LookupNotFound():
		// engine run answers this 404 with the reason (runner's
		// writeError), by design: Braze renders it as nothing. It is the
		// pipeline's answer, so the event counts as handled, not failed.
		rep.Response = notFound(engine.CallerText(out.Err))
	case rep.Filtered && r.Pipeline.Respond != nil:
		rep.Response = notFound(engine.ErrFilterRefused.Error())
	case out.Err != nil:
		rep.Errors = append(rep.Errors, out.Err.Error())
	}
}

// notFound is engine run's 404 answer to a synchronous request, with why.
func notFound(why string) *HTTPReply {
	return &HTTPReply{Status: http.StatusNotFound, Headers: map[string]string{"Content-Type": "application/json"}, Body: map[string]any{"error": why}}
}

func (r *Runner) wireRequest(req *engine.Request) *HTTPRequest {
	headers := flatHeaders(req.Header)
	for name, v := range headers {
		if shown := engine.ShownHeader(name, v); shown != v {
			headers[name] = shown
			if r.Masker != nil {
				_, token, _ := strings.Cut(v, " ")
				r.Masker.AddBuilt(v, token)
			}
		}
	}
	return &HTTPRequest{Method: req.Method, URL: req.URL, Headers: headers, Body: bodyOf(req.Body, req.Value)}
}

func bodyOf(raw []byte, value any) any {
	if value != nil {
		return value
	}
	if raw != nil {
		return string(raw)
	}
	return nil
}

func flatHeaders(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		out[k] = strings.Join(v, ", ")
	}
	return out
}

// httpEvent turns an input into the event an HTTP source would produce.
func (r *Runner) httpEvent(in Input) (*engine.Event, error) {
	src := r.Pipeline.Source
	path := in.Path
	if path == "" {
		if err := r.PathNeeded(in); err != nil {
			return nil, err
		}
		for _, p := range src.Paths {
			if !strings.Contains(p, "{") {
				path = p
				break
			}
		}
	}
	params, ok := matchAny(src.Paths, path)
	if !ok {
		return nil, fmt.Errorf("--path %s does not match the source's path (%s)", path, strings.Join(src.Paths, " or "))
	}
	var data any
	if len(in.Body) > 0 {
		v, err := jsonval.Decode(in.Body)
		if err != nil {
			return nil, fmt.Errorf("%s: the event is %w; a webhook source takes a JSON body", in.File, err)
		}
		if problem := engine.NotAnObject(src.Type.Name, in.Body); problem != "" {
			return nil, fmt.Errorf("%s: %s; engine run answers it 400", in.File, problem)
		}
		data = v
	}
	// As engine run keeps them: a template that read the caller's
	// credentials here would find nothing there.
	headers := engine.WithoutCredentialHeaders(in.Headers, src.Auth)
	return &engine.Event{Data: data, Request: &engine.RequestInfo{Method: src.Method, Path: path, Params: params, Query: in.Query, Headers: headers}}, nil
}

var placeholderRE = regexp.MustCompile(`\{(\w+)\}`)

// PathNeeded says what to pass when in gives no path and every route of
// the HTTP source reads values from its path: no request can be made up;
// or when the path it gives matches none of them (the command line's
// mistake too, exit 2, not the event's).
func (r *Runner) PathNeeded(in Input) error {
	src := r.Pipeline.Source
	if in.Path != "" {
		if path, _, _ := strings.Cut(in.Path, "?"); len(src.Paths) > 0 {
			if _, ok := matchAny(src.Paths, path); !ok {
				return fmt.Errorf("--path %s does not match the source's path (%s)", path, strings.Join(src.Paths, " or "))
			}
		}
		return nil
	}
	if slices.ContainsFunc(src.Paths, func(p string) bool { return !strings.Contains(p, "{") }) {
		return nil
	}
	return fmt.Errorf("the source reads values from the request path (%s); pass --path with a real path, such as %s", strings.Join(src.Paths, " or "), example(src.Paths[0]))
}

// example fills a path's placeholders with their names in capitals:
// /hooks/braze/tags/{user_id} gives /hooks/braze/tags/USER_ID.
func example(pattern string) string {
	return placeholderRE.ReplaceAllStringFunc(pattern, func(p string) string { return strings.ToUpper(p[1 : len(p)-1]) })
}

// matchAny matches path against the source's routes the way the engine's
// HTTP listener does (net/http's ServeMux) and returns the placeholders'
// values.
func matchAny(patterns []string, path string) (map[string]string, bool) {
	var params map[string]string
	mux := http.NewServeMux()
	for _, p := range patterns {
		names := spec.Placeholders(p)
		mux.HandleFunc(p, func(_ http.ResponseWriter, r *http.Request) {
			params = map[string]string{}
			for _, name := range names {
				params[name] = r.PathValue(name)
			}
		})
	}
	req, err := http.NewRequest(http.MethodGet, "http://dry-run"+path, nil)
	if err != nil {
		return nil, false
	}
	mux.ServeHTTP(discardWriter{}, req)
	return params, params != nil
}

// discardWriter is the response writer for matching routes; nothing is
// written to it.
type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (discardWriter) WriteHeader(int)             {}

// fixtureCaller answers lookups from STEP.json files.
type fixtureCaller struct{ dir string }

func (f fixtureCaller) Call(_ context.Context, step *engine.Step, _ *engine.Request) (*engine.Response, error) {
	if f.dir == "" {
		return nil, fmt.Errorf("a dry run sends nothing, so lookup %q needs a response: pass --fixtures DIR with DIR/%s.json holding the response body, or --sandbox to ask the built-in emulators", step.Name, step.Name)
	}
	file := filepath.Join(f.dir, step.Name+".json")
	body, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no fixture for lookup %q: create %s with the response body", step.Name, file)
	}
	if err != nil {
		return nil, fmt.Errorf("fixture for lookup %q: %w", step.Name, err)
	}
	if step.Call != nil && step.Call.Endpoint != nil {
		// A SessionM or Braze endpoint answers JSON: a fixture that is
		// not is the file's mistake, said as such, not the peer's.
		if _, err := jsonval.Decode(body); err != nil {
			return nil, fmt.Errorf("fixture %s for lookup %q is not JSON: %s; fix the file", file, step.Name, strings.TrimPrefix(err.Error(), "not JSON: "))
		}
	}
	return &engine.Response{Status: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}}, Body: body, From: file}, nil
}

// WriteJSON prints v as indented JSON with secrets masked.
func WriteJSON(w io.Writer, v any, m *secrets.Masker) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, m.String(string(b))+"\n")
	return err
}
