package runner_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/dryrun"
)

// engine dry-run shows the answer engine run gives when SessionM does not
// know the user: 404 with the reason, not a failed event (README, engine
// dry-run: "for respond pipelines, the response").
func TestDryRunAnswersAsEngineRunForAnUnknownUser(t *testing.T) {
	h := start(t, setup{})
	var wallet *engine.Pipeline
	for _, p := range h.load().Pipelines {
		if p.Name == "wallet-for-connected-content" {
			wallet = p
		}
	}
	if wallet == nil {
		t.Fatal("no F3 pipeline")
	}
	run := h.wallet("nobody")

	dry := (&dryrun.Runner{Pipeline: wallet, Lookups: engine.HTTPCaller{}, Now: time.Now()}).
		Event(context.Background(), dryrun.Input{File: "(no body)", Path: "/wallet/nobody", Query: url.Values{}, Headers: http.Header{}})
	if len(dry.Errors) > 0 || dry.Response == nil {
		t.Fatalf("dry-run: errors %v, response %+v; want the answer engine run gives, %d %s", dry.Errors, dry.Response, run.status, run.body)
	}
	var runBody any
	if err := json.Unmarshal([]byte(run.body), &runBody); err != nil {
		t.Fatalf("engine run answered %d %q", run.status, run.body)
	}
	dryBody, _ := json.Marshal(dry.Response.Body)
	var dryBodyValue any
	_ = json.Unmarshal(dryBody, &dryBodyValue)
	if run.status != http.StatusNotFound || dry.Response.Status != run.status || !reflect.DeepEqual(dryBodyValue, runBody) ||
		dry.Response.Headers["Content-Type"] != run.header.Get("Content-Type") {
		t.Errorf("dry-run answers %d %v %s, engine run %d %v %s", dry.Response.Status, dry.Response.Headers, dryBody, run.status, run.header, run.body)
	}
}
