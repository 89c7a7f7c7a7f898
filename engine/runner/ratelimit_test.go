package runner_test

import (
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	brazeemu "github.com/loyalty-connector/engine/connectors/braze/emulator"
	"github.com/loyalty-connector/engine/sandbox"
)

// broadcastPipeline triggers the campaign of the event for its whole
// segment: a broadcast, which braze.md §1 limits to 250 calls a minute.
const broadcastPipeline = `description: test broadcast, the campaign's whole segment
source:
  type: http
  path: /hooks/broadcast
target:
  connection: braze
  endpoint: campaign_trigger
  body:
    campaign_id: "{{ event.campaign_id }}"
    broadcast: true
`

// pipelinesWith is a folder with testdata/pipelines' connections and the
// given pipeline files.
func pipelinesWith(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files["connections.yaml"] = mustFile(t, "testdata/pipelines/connections.yaml")
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// startSandbox serves a sandbox with the given Braze options.
func startSandbox(t *testing.T, opts brazeemu.Options) string {
	t.Helper()
	sb, err := sandbox.New(sandbox.Options{RandSeed: 3, Braze: opts})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// A broadcast's answer speaks of the broadcast window only: with that
// window spent (x-ratelimit-remaining 0 until the hour), the recipient
// triggers of the same connection are still delivered at once.
func TestBroadcastWindowDoesNotHoldRecipientTriggers(t *testing.T) {
	sb := startSandbox(t, brazeemu.Options{Limits: brazeemu.Limits{Broadcast: brazeemu.Limit{Requests: 1, Window: time.Hour}}})
	h := start(t, setup{sandbox: sb, dirs: []string{pipelinesWith(t, map[string]string{
		"broadcast.yaml":    broadcastPipeline,
		"any-campaign.yaml": mustFile(t, "testdata/pipelines/any-campaign.yaml"),
	})}})
	h.post("/hooks/broadcast", fmt.Sprintf(`{"campaign_id":%q}`, winter), nil)
	h.drained()
	if e := h.journal("/braze/campaigns/*"); len(e) != 1 || e[0]["status"].(float64) != 201 {
		t.Fatalf("the broadcast: %v", e)
	}
	for i := range 5 {
		h.post("/hooks/campaign", fmt.Sprintf(`{"campaign_id":%q,"user":"u-100%d","n":%d,"note":"x"}`, winter, i+1, i), nil)
	}
	h.drained()
	for _, e := range h.journal("/braze/campaigns/*") {
		if e["status"].(float64) != 201 {
			t.Errorf("a trigger answered %v", e["status"])
		}
	}
}
