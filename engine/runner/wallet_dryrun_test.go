package runner_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/dryrun"
)

// engine dry-run shows the answer engine run gives to a request it does
// not answer with a wallet: 404 with the reason, not a failed or dropped
// event (README, engine dry-run: "for respond pipelines, the response").
func TestDryRunAnswersAsEngineRun(t *testing.T) {
	for _, tc := range []struct {
		name, user string
		edit       func(string) string
	}{
		{name: "SessionM does not know the user", user: "nobody"},
		{name: "the filter refuses the request", user: ana, edit: func(s string) string {
			return strings.Replace(s, "\nsource:", "\nfilter: request.params.user_id != \""+ana+"\"\nsource:", 1)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyPipelines(t)
			if tc.edit != nil {
				editFile(t, filepath.Join(dir, "wallet-for-connected-content.yaml"), tc.edit)
			}
			h := start(t, setup{dirs: []string{dir}})
			var wallet *engine.Pipeline
			for _, p := range h.load().Pipelines {
				if p.Name == "wallet-for-connected-content" {
					wallet = p
				}
			}
			if wallet == nil {
				t.Fatal("no F3 pipeline")
			}
			run := h.wallet(tc.user)

			dry := (&dryrun.Runner{Pipeline: wallet, Lookups: engine.HTTPCaller{}, Now: time.Now()}).
				Event(context.Background(), dryrun.Input{File: "(no body)", Path: "/wallet/" + tc.user, Query: url.Values{}, Headers: http.Header{}})
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
		})
	}
}
