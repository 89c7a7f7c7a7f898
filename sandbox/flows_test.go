package sandbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/connectors"
	"github.com/loyalty-connector/engine/connectors/csvfile"
	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/jsonval"
	"github.com/loyalty-connector/engine/engine/secrets"
	"github.com/loyalty-connector/engine/sandbox"
)

// The shipped pipelines and the emulators must agree: every request the
// engine builds for the four flows is accepted by the emulator it goes to
// (over real HTTP), and each user ends up with what the flow promises.
// The engine's own delivery loop comes with engine run; here the test
// sends what the pipelines build.

const (
	ana     = "3c1d7e2a-32f5-11ef-b3e4-0242ac120002"
	winter  = "9b1f3c2e-4d5a-4b6c-8d7e-0f1a2b3c4d5e"
	pointsC = "2c4e6a8b-1d3f-4a5b-9c7d-e1f2a3b4c5d6"
)

type flows struct {
	t         *testing.T
	base      string
	pipelines map[string]*engine.Pipeline
	now       time.Time
}

func newFlows(t *testing.T) *flows {
	t.Helper()
	sb, err := sandbox.New(sandbox.Options{RandSeed: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	env, _ := sb.Settings(srv.URL)
	settings := map[string]string{}
	for _, s := range env {
		settings[s.Name] = s.Value
	}
	// The engine's inbound tokens are not the sandbox's; they come from
	// examples/sandbox.env.
	tokens, err := secrets.ReadEnvFile("../examples/sandbox.env")
	if err != nil {
		t.Fatal(err)
	}
	resolver := secrets.NewResolver(secrets.LookupChain(settings, tokens), "", &secrets.Masker{})
	loader, err := engine.NewLoader(connectors.Catalog(), resolver)
	if err != nil {
		t.Fatal(err)
	}
	proj := loader.Load([]string{"../pipelines"})
	if proj.Diagnostics.HasErrors() {
		t.Fatalf("pipelines: %v", proj.Diagnostics.Items())
	}
	f := &flows{t: t, base: srv.URL, pipelines: map[string]*engine.Pipeline{}, now: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)}
	for _, p := range proj.Pipelines {
		f.pipelines[p.Name] = p
	}
	return f
}

// run evaluates one event (lookups over HTTP to the emulators) and sends
// the target request, failing on any error or rejection.
func (f *flows) run(pipeline string, ev *engine.Event) *engine.Outcome {
	f.t.Helper()
	p := f.pipelines[pipeline]
	if p == nil {
		f.t.Fatalf("no pipeline %s", pipeline)
	}
	caller := engine.HTTPCaller{}
	out := p.Evaluate(context.Background(), ev, caller, f.now)
	if out.Err != nil || !out.Passed {
		f.t.Fatalf("%s: passed=%v err=%v %s", pipeline, out.Passed, out.Err, out.FilterExplain)
	}
	if out.Request == nil {
		return out
	}
	resp, err := caller.Call(context.Background(), nil, out.Request)
	if err != nil {
		f.t.Fatalf("%s: sending: %v", pipeline, err)
	}
	if err := p.Target.Conn.Type.ResponseError(resp.Status, resp.Body); err != nil {
		f.t.Fatalf("%s: the emulator refused %s %s: %v", pipeline, out.Request.Method, out.Request.URL, err)
	}
	return out
}

func (f *flows) deliveries(user string) map[string]any {
	f.t.Helper()
	resp, err := http.Get(f.base + "/_sandbox/deliveries?user=" + user)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var d map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil || resp.StatusCode != 200 {
		f.t.Fatalf("deliveries for %s: %d %v", user, resp.StatusCode, err)
	}
	return d
}

func webhook(t *testing.T, file, path string) *engine.Event {
	t.Helper()
	body, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	data, err := jsonval.Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	params := map[string]string{}
	if user, ok := strings.CutPrefix(path, "/hooks/braze/tags/"); ok {
		params["user_id"] = user
	}
	return &engine.Event{Data: data, Request: &engine.RequestInfo{Method: "POST", Path: path, Params: params, Headers: http.Header{}}}
}

func TestFlowsAgainstTheEmulators(t *testing.T) {
	f := newFlows(t)

	// F1: a Braze webhook body becomes SessionM tags (an expiring tag).
	// Posted twice, it stays one tag whose TTL restarts.
	for range 2 {
		f.run("braze-segment-to-sessionm-tags", webhook(t, "../examples/events/braze-webhook-tags.json", "/hooks/braze/tags/"+ana))
	}
	tags := f.deliveries(ana)["sessionm"].(map[string]any)["tags"].(map[string]any)
	if len(tags) != 2 || tags["braze_test"].(map[string]any)["expires_at"] == nil || tags["spring_promo"] == nil {
		t.Fatalf("F1: Ana's tags %v", tags)
	}

	// F2: every CSV row with an external id becomes a tag by external id.
	file, err := os.Open("../examples/csv/braze-segment-export.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	rows, err := csvfile.NewReader(file, "braze-segment-export.csv", ',')
	if err != nil {
		t.Fatal(err)
	}
	sent := 0
	for {
		row, err := rows.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ev := &engine.Event{Data: row.Values, Row: &engine.RowInfo{Number: row.Number, File: "braze-segment-export.csv"}}
		p := f.pipelines["segment-csv-to-sessionm-tags"]
		if out := p.Evaluate(context.Background(), ev, engine.HTTPCaller{}, f.now); !out.Passed {
			continue // Claire has no external id; the filter drops her row
		}
		f.run("segment-csv-to-sessionm-tags", ev)
		sent++
	}
	if sent != 3 {
		t.Fatalf("F2 sent %d rows, want 3", sent)
	}
	for _, user := range []string{"u-1001", "u-1002", "u-1004"} {
		tags := f.deliveries(user)["sessionm"].(map[string]any)["tags"].(map[string]any)
		if tags["braze_segment_export"] == nil {
			t.Fatalf("F2: %s has tags %v", user, tags)
		}
	}

	// F3: the wallet lookup goes to Connect; the reply keeps the one live
	// offer of the three seeded.
	ev := &engine.Event{Request: &engine.RequestInfo{Method: "GET", Path: "/wallet/" + ana, Params: map[string]string{"user_id": ana}, Headers: http.Header{}}}
	out := f.run("wallet-for-connected-content", ev)
	var reply map[string]any
	if err := json.Unmarshal(out.Reply.Body, &reply); err != nil {
		t.Fatal(err)
	}
	if reply["available_points"] != 1350.0 || reply["offer_count"] != 1.0 {
		t.Fatalf("F3 reply %v", reply)
	}

	// F4: offer issued -> campaign trigger with the wallet's balance;
	// points awarded -> Canvas with context.
	f.run("offer-issued-to-braze-campaign", webhook(t, "../examples/events/sessionm-offer-issued.json", "/hooks/sessionm/offers"))
	f.run("points-awarded-to-braze-canvas", webhook(t, "../examples/events/sessionm-points-awarded.json", "/hooks/sessionm/points"))
	msgs := f.deliveries("u-1001")["braze"].(map[string]any)["messages"].([]any)
	if len(msgs) != 2 {
		t.Fatalf("F4: u-1001 got %d messages, want 2: %v", len(msgs), msgs)
	}
	campaign, canvas := msgs[0].(map[string]any), msgs[1].(map[string]any)
	props := campaign["properties"].(map[string]any)
	if campaign["campaign_id"] != winter || props["offer_title"] != "20% off winter coats" || props["available_points"] != 1350.0 {
		t.Fatalf("F4 campaign message %v", campaign)
	}
	if canvas["canvas_id"] != pointsC || canvas["properties"].(map[string]any)["points_awarded"] != 250.0 {
		t.Fatalf("F4 Canvas message %v", canvas)
	}
}
