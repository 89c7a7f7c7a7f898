package runner_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/loyalty-connector/engine/engine/connected"
	"github.com/loyalty-connector/engine/engine/preview"
)

// The Connected Content call that F3's file tells Braze to make gets the
// user's wallet: rendered as Braze would for Ana's Braze profile (external
// id u-1001, SessionM id in the custom attribute sessionm_user_id, as the
// sandbox seeds link them) and sent to the engine. get_user_offers takes
// SessionM's user id only (sessionm.md §4): a URL with Braze's external
// id gets a 404, which Braze renders as nothing.
func TestWalletPipelineDocumentsAWorkingConnectedContentCall(t *testing.T) {
	h := start(t, setup{})
	src, err := os.ReadFile("../../pipelines/wallet-for-connected-content.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The example is the comment's indented lines.
	var example []string
	for _, line := range strings.Split(string(src), "\n") {
		if rest, ok := strings.CutPrefix(line, "#  "); ok && strings.TrimSpace(rest) != "" {
			example = append(example, rest)
		}
	}
	template := strings.Join(example, "\n")
	if !strings.Contains(template, "{% connected_content https://engine.example.com/wallet/") || !strings.Contains(template, `"Bearer ..."`) {
		t.Fatalf("the file's comment shows no Connected Content call to the wallet route:\n%s", template)
	}
	template = strings.NewReplacer("https://engine.example.com", h.engine.URL, `"Bearer ..."`, `"Bearer sandbox-wallet-token"`).Replace(template)

	profile := h.control("GET", "/deliveries?user=u-1001", "")["braze"].(map[string]any)
	attrs := profile["attributes"].(map[string]any)
	user := map[string]any{"user_id": profile["external_id"], "custom_attributes": map[string]any{"sessionm_user_id": attrs["sessionm_user_id"]}}

	live := connected.NewLive(nil)
	live.AnyPort = true // the engine's test listener
	res := preview.New(connected.NewClient(live), nil).Render(context.Background(), preview.Input{Template: template, User: user})
	if len(res.Errors) > 0 || len(res.Calls) != 1 {
		t.Fatalf("errors %v, calls %+v", res.Errors, res.Calls)
	}
	if got := strings.TrimSpace(res.Output); got != "1350" {
		t.Fatalf("the example renders %q for Ana, want her 1350 points; the call: %+v, warnings %v", got, res.Calls[0], res.Warnings)
	}
}
