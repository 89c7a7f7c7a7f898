package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/loyalty-connector/engine/internal/golden"
)

const templatesDir = "examples/templates"

// templateExample is one entry of examples/templates/index.json.
type templateExample struct {
	Name, Title, Template, User, Trigger, Context, Event string
}

func readTemplateExamples(t *testing.T) []templateExample {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(templatesDir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var list []templateExample
	if err := json.Unmarshal(raw, &list); err != nil {
		t.Fatal(err)
	}
	if len(list) < 4 {
		t.Fatalf("index.json lists %d examples", len(list))
	}
	return list
}

// renderArgs is the engine render command line of an example.
func (ex templateExample) renderArgs() []string {
	args := []string{"render", filepath.Join(templatesDir, ex.Template)}
	for _, f := range []struct{ flag, file string }{{"--user", ex.User}, {"--trigger", ex.Trigger}, {"--context", ex.Context}, {"--event", ex.Event}} {
		if f.file != "" {
			args = append(args, f.flag, filepath.Join(templatesDir, f.file))
		}
	}
	return args
}

// timingRE matches the measured times of --format json, which differ
// from run to run.
var timingRE = regexp.MustCompile(`"(duration_ms|total_ms|connected_content_ms)": [0-9.e+-]+`)

func stableJSON(s string) string { return timingRE.ReplaceAllString(s, `"$1": 0`) }

// Every shipped example renders against the sandbox as its golden files
// say, as a message and as --format json.
func TestTemplateExampleGoldens(t *testing.T) {
	for _, ex := range readTemplateExamples(t) {
		t.Run(ex.Name, func(t *testing.T) {
			stdout, stderr, code := runEngine(ex.renderArgs()...)
			if code != exitOK || stderr != "" {
				t.Fatalf("exit %d, stderr:\n%s", code, stderr)
			}
			golden.Check(t, filepath.Join(goldenDir, "templates", ex.Name+".txt"), stdout)
			stdout, _, code = runEngine(append(ex.renderArgs(), "--format", "json")...)
			if code != exitOK {
				t.Fatalf("--format json: exit %d", code)
			}
			golden.Check(t, filepath.Join(goldenDir, "templates", ex.Name+".json"), stableJSON(stdout))
		})
	}
}

// The partner page's example reads the sandbox wallet of the user given:
// the points and offers differ per user, and the offer id comes from the
// trigger file.
func TestPartnerWalletPerUser(t *testing.T) {
	ana, _, _ := runEngine("render", templatesDir+"/partner-wallet.liquid", "--user", templatesDir+"/users/ana.json", "--trigger", templatesDir+"/triggers/offer-issued.json")
	sean, _, _ := runEngine("render", templatesDir+"/partner-wallet.liquid", "--user", templatesDir+"/users/sean.json")
	for _, want := range []string{"You have 1350 points.", "- 20% off winter coats (expires 2099-12-31)", "Your new offer: 1a2b3324-1da6-4e49-b921-afc386dabb60"} {
		if !strings.Contains(ana, want) {
			t.Errorf("Ana's message lacks %q:\n%s", want, ana)
		}
	}
	if !strings.Contains(sean, "You have 5200 points.") || strings.Contains(sean, "winter coats") || !strings.Contains(sean, "Your new offer: \n") {
		t.Errorf("Seán's message:\n%s", sean)
	}
}

// The same templates against fixture files: the fixtures folder maps
// get_user_offers to Ana's wallet file and answers 503 for anyone else,
// so Sam's email, whose call has :retry, gives up and is aborted.
func TestRenderWithFixtures(t *testing.T) {
	fixtures := []string{"--connected-content", "fixtures", templatesDir + "/fixtures", "--vars", templatesDir + "/fixtures/vars.json"}
	stdout, stderr, code := runEngine(append([]string{"render", templatesDir + "/partner-wallet.liquid", "--user", templatesDir + "/users/ana.json", "--trigger", templatesDir + "/triggers/offer-issued.json"}, fixtures...)...)
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	golden.Check(t, filepath.Join(goldenDir, "templates", "partner-wallet.fixtures.txt"), stdout)

	t.Setenv("BRAZE_CREDENTIAL_SESSIONM_CONNECT", "sandbox-connect:sandbox-secret")
	stdout, _, code = runEngine(append([]string{"render", templatesDir + "/wallet-email.liquid", "--user", templatesDir + "/users/sam.json", "--format", "json"}, fixtures...)...)
	if code != exitAborted {
		t.Fatalf("exit %d, want %d (aborted)", code, exitAborted)
	}
	golden.Check(t, filepath.Join(goldenDir, "templates", "wallet-email-sam.fixtures.json"), stableJSON(stdout))
}

func TestRenderMessage(t *testing.T) {
	dir := t.TempDir()
	write := writer(t, dir)
	blocks := filepath.Join(dir, "blocks")
	write("blocks/header.liquid", "Hola {{${first_name}}}{{content_blocks.${inner}}}")
	write("blocks/inner.liquid", " ({{custom_attribute.${tier}}}){{content_blocks.${deepest}}}")
	write("blocks/deepest.liquid", "never shown")
	user := write("user.json", `{"user_id":"u1","first_name":"Ana","custom_attributes":{"tier":"Gold"},"favourite_colour":"red"}`)
	trigger := write("trigger.json", `{"offer_id":"o-9","points":120}`)
	context := write("context.json", `{"step":"welcome"}`)
	event := write("event.json", `{"store":"Madrid"}`)
	// A port nothing listens on: live mode must refuse it before dialling.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + ln.Addr().String() + "/x"
	ln.Close()
	tests := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr string
	}{
		{"every namespace", []string{write("all.liquid", "{{${first_name}}}/{{custom_attribute.${tier}}}/{{api_trigger_properties.${offer_id}}}/{{api_trigger_properties.${points} | plus: 1}}/{{context.${step}}}/{{canvas_entry_properties.${step}}}/{{event_properties.${store}}}"),
			"--user", user, "--trigger", trigger, "--context", context, "--event", event},
			0, "Ana/Gold/o-9/121/welcome/welcome/Madrid", user + `: warning: "favourite_colour" is not a Braze standard attribute, so {{${favourite_colour}}} stays empty in Braze; put custom attributes under custom_attributes` + "\n"},
		// Content Blocks nest one level: the third level renders empty.
		{"content blocks", []string{write("blocks.liquid", "{{content_blocks.${header}}}!"), "--user", write("ana.json", `{"first_name":"Ana","custom_attributes":{"tier":"Gold"}}`), "--content-blocks", blocks},
			0, "Hola Ana (Gold)!", filepath.Join(dir, "blocks", "inner.liquid") + ":1:32: warning: Content Blocks nest one level deep in Braze; \"deepest\" is a third level and renders empty\n"},
		// An error of the render is placed as a parse error is.
		{"render error", []string{write("zero.liquid", "Hi\n  {{ 10 | divided_by: api_trigger_properties.${points} | minus: 120 }}")},
			exitProblem, "", filepath.Join(dir, "zero.liquid") + ":2:3: filter divided_by failed: division by zero in {{ 10 | divided_by: api_trigger_properties.points | minus: 120 }}\n"},
		{"aborted", []string{write("abort.liquid", "Hi{% if api_trigger_properties.${offer_id} == blank %}{% abort_message('no offer') %}{% endif %}")},
			exitAborted, "", "engine render: the message is aborted, Braze would not send it: no offer\n"},
		{"live refuses other ports", []string{write("live.liquid", "[{% connected_content "+closedURL+" %}]"), "--connected-content", "live"},
			0, "[]", filepath.Join(dir, "live.liquid") + ":1:23: warning: connected_content GET " + closedURL + ": Braze connects only to ports 80 and 443, not " + strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:") + "; nothing is inserted\n"},
		{"sandbox 404", []string{write("gone.liquid", "[{% connected_content http://127.0.0.1:8081/sessionm/core/priv/v1/apps/sandbox-core-key/users/nobody :basic_auth sessionm_core :save u %}{{u.user.id}}]")},
			0, "[]", filepath.Join(dir, "gone.liquid") + ":1:23: warning: connected_content GET http://127.0.0.1:8081/sessionm/core/priv/v1/apps/sandbox-core-key/users/nobody answered 404, which Braze renders as nothing\n"},
		{"connected_content error", []string{write("typo.liquid", "Hi\n{% connected_content https://x.test :cache_bust %}")},
			1, "", filepath.Join(dir, "typo.liquid") + ":2:37: :cache_bust is not a connected_content option; to skip Braze's cache write :no_cache\n"},
		{"bad mode", []string{filepath.Join(dir, "all.liquid"), "--connected-content", "cache"},
			2, "", "engine render: --connected-content is sandbox, fixtures DIR or live, not \"cache\"\n"},
		{"fixtures folder missing", []string{filepath.Join(dir, "all.liquid"), "--connected-content", "fixtures", filepath.Join(dir, "nope")},
			2, "", "engine render: --connected-content: reading the fixtures index: open " + filepath.Join(dir, "nope", "fixtures.yaml") + ": no such file or directory (a fixtures folder holds fixtures.yaml listing method, url and file of each answer)\n"},
		{"fixtures folder forgotten", []string{"--connected-content", "fixtures", filepath.Join(dir, "all.liquid")},
			2, "", "engine render: fixtures needs a folder: --connected-content fixtures DIR\n"},
		{"fixtures folder forgotten before a flag", []string{"--connected-content", "fixtures", "--format", "text", filepath.Join(dir, "all.liquid")},
			2, "", "engine render: fixtures needs a folder: --connected-content fixtures DIR\n"},
		{"bad format", []string{filepath.Join(dir, "all.liquid"), "--format", "yaml"}, 2, "", "engine render: --format is text or json, not \"yaml\"\n"},
		{"user not JSON", []string{filepath.Join(dir, "all.liquid"), "--user", write("bad.json", `{"first_name":`)}, 2, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runEngine(append([]string{"render"}, tt.args...)...)
			if tt.name == "user not JSON" {
				if code != exitUsage || !strings.HasPrefix(stderr, "engine render: --user "+filepath.Join(dir, "bad.json")+": ") {
					t.Errorf("exit %d, stderr %q", code, stderr)
				}
				return
			}
			if code != tt.code || stdout != tt.stdout || stderr != tt.stderr {
				t.Errorf("exit %d, stdout %q, stderr %q\nwant %d, %q, %q", code, stdout, stderr, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}

// --format json reports an aborted message with exit status 3 too, and a
// cached call as cached.
func TestRenderJSONCache(t *testing.T) {
	dir := t.TempDir()
	tpl := writer(t, dir)("twice.liquid", "{% connected_content http://127.0.0.1:8081/sessionm/core/priv/v1/apps/sandbox-core-key/users/{{${user_id}}} :basic_auth sessionm_core :save a %}{% connected_content http://127.0.0.1:8081/sessionm/core/priv/v1/apps/sandbox-core-key/users/{{${user_id}}} :basic_auth sessionm_core :save b %}{{a.user.available_points}}={{b.user.available_points}}{% abort_message('done') %}")
	stdout, _, code := runEngine("render", tpl, "--user", templatesDir+"/users/sean.json", "--format", "json")
	var res struct {
		Aborted     bool   `json:"aborted"`
		AbortReason string `json:"abort_reason"`
		Calls       []struct {
			Cached bool `json:"cached"`
			Status int  `json:"status"`
		} `json:"connected_content"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatal(err, stdout)
	}
	if code != exitAborted || !res.Aborted || res.AbortReason != "done" || len(res.Calls) != 2 || res.Calls[0].Cached || !res.Calls[1].Cached || res.Calls[1].Status != 200 {
		t.Errorf("exit %d: %s", code, stdout)
	}
}

// engine validate knows the message tags in .liquid templates.
func TestValidateExampleTemplates(t *testing.T) {
	files, err := filepath.Glob(templatesDir + "/*.liquid")
	if err != nil || len(files) < 4 {
		t.Fatalf("%v, %v", files, err)
	}
	stdout, _, code := runEngine(append([]string{"validate"}, files...)...)
	if code != exitOK || stdout != "ok: 4 templates\n" {
		t.Errorf("exit %d: %s", code, stdout)
	}
	bad := writer(t, t.TempDir())("bad.liquid", "{% connected_content https://x.test :method delete %}")
	stdout, _, code = runEngine("validate", bad)
	if code != exitProblem || !strings.Contains(stdout, bad+`:1:45: Braze's Connected Content supports only :method get and :method post, not "delete"`) {
		t.Errorf("exit %d: %s", code, stdout)
	}
}

// The example push is written for what F4 sends: the trigger properties
// of F4's dry run render it without aborting. A key spelt one way in the
// pipeline and another in the template would abort every push.
func TestOfferPushReadsWhatF4Sends(t *testing.T) {
	stdout, stderr, code := runEngine(append(dryRun, "pipelines/offer-issued-to-braze-campaign.yaml", "--event", "examples/events/sessionm-offer-issued.json", "--format", "json")...)
	if code != 0 {
		t.Fatalf("dry run exit %d: %s", code, stderr)
	}
	var out struct {
		Requests []struct {
			Body struct {
				Recipients []struct {
					TriggerProperties json.RawMessage `json:"trigger_properties"`
				} `json:"recipients"`
			} `json:"body"`
		} `json:"requests"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil || len(out.Requests) != 1 || len(out.Requests[0].Body.Recipients) != 1 {
		t.Fatalf("%v: %s", err, stdout)
	}
	trigger := filepath.Join(t.TempDir(), "trigger.json")
	if err := os.WriteFile(trigger, out.Requests[0].Body.Recipients[0].TriggerProperties, 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code = runEngine("render", templatesDir+"/offer-push.liquid", "--user", templatesDir+"/users/sam.json", "--trigger", trigger)
	if code != 0 || !strings.Contains(stdout, "20% off winter coats is in your wallet until Dec 31") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
