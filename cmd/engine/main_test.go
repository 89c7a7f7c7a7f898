package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/inbox"
	"github.com/loyalty-connector/engine/engine/runner"
	"github.com/loyalty-connector/engine/engine/secrets"
	"github.com/loyalty-connector/engine/engine/spec"
	"github.com/loyalty-connector/engine/internal/golden"
)

// The tests run from the repository root so that commands and outputs use
// the paths a user types (pipelines/..., examples/...).
func TestMain(m *testing.M) {
	flag.Parse()
	if err := os.Chdir("../.."); err != nil {
		panic(err)
	}
	dir, err := os.MkdirTemp("", "engine-test-bin-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// binDir holds the binary buildEngine builds; TestMain removes it.
var binDir string

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// buildEngine builds the engine binary the first time a test asks for it
// and returns its path; later calls reuse it.
func buildEngine(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		bin := filepath.Join(binDir, "engine")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/engine").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build: %v\n%s", err, out)
			return
		}
		builtBin = bin
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

const goldenDir = "cmd/engine/testdata/golden"

func runEngine(args ...string) (stdout, stderr string, code int) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return out.String(), errOut.String(), code
}

// dryRun is the command line every golden dry run starts with: sandbox
// settings, the example fixtures, and a fixed clock.
var dryRun = []string{"dry-run", "--env-file", "examples/sandbox.env", "--fixtures", "examples/fixtures", "--now", "2026-11-29T10:00:00Z"}

func TestDryRunGoldens(t *testing.T) {
	for _, tc := range []struct {
		golden string
		args   []string
		code   int
	}{
		{"offer-issued.txt", []string{"pipelines/offer-issued-to-braze-campaign.yaml", "--event", "examples/events/sessionm-offer-issued.json"}, 0},
		{"offer-issued.json", []string{"pipelines/offer-issued-to-braze-campaign.yaml", "--event", "examples/events/sessionm-offer-issued.json", "--format", "json"}, 0},
		{"offer-issued-filtered.txt", []string{"pipelines/offer-issued-to-braze-campaign.yaml", "--event", "examples/events/sessionm-points-awarded.json"}, 0},
		{"offer-issued-filtered.json", []string{"pipelines/offer-issued-to-braze-campaign.yaml", "--event", "examples/events/sessionm-points-awarded.json", "--format", "json"}, 0},
		{"points-awarded.txt", []string{"pipelines/points-awarded-to-braze-canvas.yaml", "--event", "examples/events/sessionm-points-awarded.json"}, 0},
		{"braze-tags.txt", []string{"pipelines/braze-segment-to-sessionm-tags.yaml", "--event", "examples/events/braze-webhook-tags.json", "--path", "/hooks/braze/tags/3c1d7e2a-32f5-11ef-b3e4-0242ac120002"}, 0},
		{"braze-tags-sessionm-path.json", []string{"pipelines/braze-segment-to-sessionm-tags.yaml", "--event", "examples/events/braze-webhook-tags.json", "--path", "/priv/v1/apps/sandbox-core-key/users/u-1001/tags", "--format", "json"}, 0},
		{"segment-csv.txt", []string{"pipelines/segment-csv-to-sessionm-tags.yaml", "--csv", "examples/csv/braze-segment-export.csv"}, 0},
		{"segment-csv-2-rows.json", []string{"pipelines/segment-csv-to-sessionm-tags.yaml", "--csv", "examples/csv/braze-segment-export.csv", "--rows", "2", "--format", "json"}, 0},
		{"segment-csv-broken-rows.txt", []string{"pipelines/segment-csv-to-sessionm-tags.yaml", "--csv", "cmd/engine/testdata/broken-rows.csv"}, 1},
		{"segment-csv-1-row.txt", []string{"pipelines/segment-csv-to-sessionm-tags.yaml", "--csv", "examples/csv/braze-segment-export.csv", "--rows", "1"}, 0},
		// a stray quote: valid CSV, one row over four lines, warned about
		{"segment-csv-stray-quote.txt", []string{"pipelines/segment-csv-to-sessionm-tags.yaml", "--csv", "cmd/engine/testdata/stray-quote.csv"}, 0},
		// quoted values in a file with CR-only line endings: the file
		// fails as a whole, and the summary says so
		{"segment-csv-cr-only.txt", []string{"pipelines/segment-csv-to-sessionm-tags.yaml", "--csv", "cmd/engine/testdata/cr-only.csv"}, 1},
		// The first row read as the header: the file fails as engine run
		// fails it, before a row is sent.
		// ttl in whole seconds or empty: "2,592,000" was sent as 2, "30
		// days" as 30; now each is refused, a dead letter in engine run.
		{"segment-csv-ttl.txt", []string{"pipelines/segment-csv-to-sessionm-tags.yaml", "--csv", "cmd/engine/testdata/ttl.csv"}, 1},
		{"segment-csv-no-header.txt", []string{"pipelines/segment-csv-to-sessionm-tags.yaml", "--csv", "cmd/engine/testdata/no-header.csv"}, 1},
		{"wallet.txt", []string{"pipelines/wallet-for-connected-content.yaml", "--path", "/wallet/3c1d7e2a-32f5-11ef-b3e4-0242ac120002", "--query", "culture=es-ES"}, 0},
		// a query in --path is the same as --query, given once or in both
		{"wallet.txt", []string{"pipelines/wallet-for-connected-content.yaml", "--path", "/wallet/3c1d7e2a-32f5-11ef-b3e4-0242ac120002?culture=es-ES"}, 0},
		{"wallet.txt", []string{"pipelines/wallet-for-connected-content.yaml", "--path", "/wallet/3c1d7e2a-32f5-11ef-b3e4-0242ac120002?culture=es-ES", "--query", "culture=es-ES"}, 0},
		{"wallet.json", []string{"pipelines/wallet-for-connected-content.yaml", "--path", "/wallet/3c1d7e2a-32f5-11ef-b3e4-0242ac120002", "--format", "json"}, 0},
		// sessionm.md §4, §8 (A): Connect datetimes in the zone-less .NET
		// form, read as UTC: one offer expires 30 minutes after --now, one
		// 30 minutes before
		{"wallet-dotnet-no-zone.txt", []string{"pipelines/wallet-for-connected-content.yaml", "--path", "/wallet/3c1d7e2a-32f5-11ef-b3e4-0242ac120002", "--fixtures", "cmd/engine/testdata/dotnet-no-zone"}, 0},
		// an offer whose expiry cannot be read is left out (it may have
		// expired) and the others are still answered
		{"wallet-unreadable-expiry.txt", []string{"pipelines/wallet-for-connected-content.yaml", "--path", "/wallet/3c1d7e2a-32f5-11ef-b3e4-0242ac120002", "--fixtures", "cmd/engine/testdata/unreadable-expiry"}, 0},
		// A wallet without a payload has no offers; what is not an offer
		// object is left out, not a failure of the whole answer.
		{"wallet-no-payload.txt", []string{"pipelines/wallet-for-connected-content.yaml", "--path", "/wallet/3c1d7e2a-32f5-11ef-b3e4-0242ac120002", "--fixtures", "cmd/engine/testdata/no-payload"}, 0},
		{"wallet-odd-offers.txt", []string{"pipelines/wallet-for-connected-content.yaml", "--path", "/wallet/3c1d7e2a-32f5-11ef-b3e4-0242ac120002", "--fixtures", "cmd/engine/testdata/odd-wallet"}, 0},
		// sessionm.md §4 (O, S11): without expiration_date, an offer
		// expires at its redemption_end_date
		{"wallet-redemption-end-date.txt", []string{"pipelines/wallet-for-connected-content.yaml", "--path", "/wallet/3c1d7e2a-32f5-11ef-b3e4-0242ac120002", "--fixtures", "cmd/engine/testdata/redemption-end-date"}, 0},
		// SessionM does not know the user (user_not_found, which counts
		// under any status; a fixture answers 200): the 404 engine run
		// answers, which is the pipeline's answer, not a failure
		{"wallet-user-not-found.txt", []string{"pipelines/wallet-for-connected-content.yaml", "--path", "/wallet/nobody", "--fixtures", "cmd/engine/testdata/user-not-found"}, 0},
		{"wallet-user-not-found.json", []string{"pipelines/wallet-for-connected-content.yaml", "--path", "/wallet/nobody", "--fixtures", "cmd/engine/testdata/user-not-found", "--format", "json"}, 0},
		{"event-not-json.txt", []string{"pipelines/offer-issued-to-braze-campaign.yaml", "--event", "cmd/engine/testdata/not-json.json"}, 1},
		// as engine run refuses it at the door (400)
		{"event-not-an-object.txt", []string{"pipelines/offer-issued-to-braze-campaign.yaml", "--event", "cmd/engine/testdata/not-an-object.json"}, 1},
		// a fixture that is not JSON is named with where it breaks, as
		// the file's mistake, not SessionM's
		{"wallet-fixture-not-json.txt", []string{"pipelines/wallet-for-connected-content.yaml", "--path", "/wallet/3c1d7e2a-32f5-11ef-b3e4-0242ac120002", "--fixtures", "cmd/engine/testdata/fixture-not-json"}, 1},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			stdout, stderr, code := runEngine(append(dryRun, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d; stderr: %s", code, tc.code, stderr)
			}
			golden.Check(t, filepath.Join(goldenDir, tc.golden), stdout)
		})
	}
}

// Without --fixtures a lookup cannot be answered; the message says how.
func TestDryRunNeedsFixturesForLookups(t *testing.T) {
	stdout, _, code := runEngine("dry-run", "--env-file", "examples/sandbox.env", "pipelines/offer-issued-to-braze-campaign.yaml", "--event", "examples/events/sessionm-offer-issued.json")
	if code != exitProblem || !strings.Contains(stdout, "pass --fixtures DIR with DIR/wallet.json holding the response body") {
		t.Errorf("code %d, output:\n%s", code, stdout)
	}
}

// No secret value reaches the output, in either format.
func TestDryRunMasksSecrets(t *testing.T) {
	secrets := []string{"sandbox-core-secret", "c2FuZGJveC1jb25uZWN0OnNhbmRib3gtc2VjcmV0", "sandbox-braze-key", "c2FuZGJveC1jb3JlLWtleTpzYW5kYm94LWNvcmUtc2VjcmV0"}
	for _, args := range [][]string{
		{"pipelines/offer-issued-to-braze-campaign.yaml", "--event", "examples/events/sessionm-offer-issued.json", "--format", "json"},
		{"pipelines/offer-issued-to-braze-campaign.yaml", "--event", "examples/events/sessionm-offer-issued.json"},
		{"pipelines/segment-csv-to-sessionm-tags.yaml", "--csv", "examples/csv/braze-segment-export.csv", "--format", "json"},
	} {
		stdout, stderr, _ := runEngine(append(dryRun, args...)...)
		for _, s := range secrets {
			if strings.Contains(stdout+stderr, s) {
				t.Errorf("%v printed the secret %q", args, s)
			}
		}
		if !strings.Contains(stdout, "****") {
			t.Errorf("%v: no masked value in the output", args)
		}
	}
}

// A secret with characters that JSON escapes is masked in JSON output too.
func TestDryRunMasksEscapedSecrets(t *testing.T) {
	env := filepath.Join(t.TempDir(), "special.env")
	if err := os.WriteFile(env, []byte("BRAZE_API_KEY=k<ey>&\"q\\x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, _, code := runEngine("dry-run", "--env-file", env, "--env-file", "examples/sandbox.env", "--fixtures", "examples/fixtures",
		"pipelines/offer-issued-to-braze-campaign.yaml", "--event", "examples/events/sessionm-offer-issued.json", "--format", "json")
	if code != exitOK || !strings.Contains(stdout, `"Authorization": "Bearer ****"`) || strings.Contains(stdout, `k\u003cey`) || strings.Contains(stdout, "k<ey") {
		t.Errorf("code %d, output:\n%s", code, stdout)
	}
}

func TestDryRunUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dry-run"}, "name one pipeline file"},
		{[]string{"dry-run", "pipelines/offer-issued-to-braze-campaign.yaml", "--event", "a.json", "--csv", "b.csv"}, "not both"},
		{[]string{"dry-run", "--env-file", "examples/sandbox.env", "pipelines/offer-issued-to-braze-campaign.yaml"}, "give the request body with --event FILE"},
		{[]string{"dry-run", "--env-file", "examples/sandbox.env", "pipelines/segment-csv-to-sessionm-tags.yaml", "--event", "x.json"}, "reads CSV files; give it --csv FILE"},
		{[]string{"dry-run", "--env-file", "examples/sandbox.env", "pipelines/offer-issued-to-braze-campaign.yaml", "--csv", "x.csv"}, "give it --event"},
		{[]string{"dry-run", "x.yaml", "--event", "e.json", "--format", "xml"}, `--format is text or json, not "xml"`},
		{[]string{"dry-run", "x.yaml", "--event", "e.json", "--now", "yesterday"}, "not an RFC 3339 time"},
		{[]string{"dry-run", "--env-file", "examples/sandbox.env", "pipelines/offer-issued-to-braze-campaign.yaml", "--event", "no/such/file.json"}, "cannot read the event"},
		{[]string{"dry-run", "--bogus"}, "unknown flag --bogus"},
		// Every route has a {placeholder}: a command-line problem, not a
		// failing event (it exited 1).
		{[]string{"dry-run", "--env-file", "examples/sandbox.env", "pipelines/braze-segment-to-sessionm-tags.yaml", "--event", "examples/events/braze-webhook-tags.json"},
			"the source reads values from the request path (/hooks/braze/tags/{user_id} or /priv/v1/apps/{api_key}/users/{user_id}/tags); pass --path with a real path, such as /hooks/braze/tags/USER_ID"},
		{[]string{"dry-run", "pipelines/", "--event", "e.json"}, "pipelines/ is a folder; name one pipeline file in it"},
		{[]string{"dry-run", "pipelines/connections.yaml", "--event", "e.json"}, "holds the connections; name a pipeline file that uses them"},
		{[]string{"dry-run", "--env-file", "examples/sandbox.env", "pipelines/wallet-for-connected-content.yaml", "--path", "/wallet/u?culture=es-ES", "--query", "culture=fr-FR"},
			`the query parameter "culture" is given by --path (es-ES) and by --query (fr-FR); give it once`},
		// A path no route takes: the command line's mistake (it exited 1).
		{[]string{"dry-run", "--env-file", "examples/sandbox.env", "pipelines/wallet-for-connected-content.yaml", "--path", "/wallets/u"},
			`--path /wallets/u does not match the source's path (/wallet/{user_id})`},
		{[]string{"dry-run", "--env-file", "examples/sandbox.env", "pipelines/wallet-for-connected-content.yaml", "--path", "/wallet/u?culture=%zz"},
			`--path "/wallet/u?culture=%zz": the query after "?" cannot be read (invalid URL escape "%zz"); give its parameters with --query name=value`},
	} {
		_, stderr, code := runEngine(tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: code %d, stderr %q, want it to say %q", tc.args, code, stderr, tc.want)
		}
	}
}

func TestValidateCommand(t *testing.T) {
	stdout, _, code := runEngine("validate", "--env-file", "examples/sandbox.env", "pipelines/")
	if code != exitOK || stdout != "ok: 5 pipelines in 6 files\n" {
		t.Errorf("code %d, output %q", code, stdout)
	}
	// Without the settings, every unset variable is named, with its place.
	stdout, _, code = runEngine("validate", "pipelines/")
	if code != exitProblem {
		t.Errorf("code %d, want %d", code, exitProblem)
	}
	for _, want := range []string{
		"pipelines/connections.yaml:25:15: connections.braze.base_url: environment variable BRAZE_REST_URL is not set",
		"pipelines/connections.yaml:26:14: connections.braze.api_key: secret BRAZE_API_KEY is not set",
		"errors in 6 files\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	t.Setenv("API_TOKEN", "test-token") // engine/testdata/bad/connections.yaml needs it
	stdout, _, code = runEngine("validate", "engine/testdata/bad/unknown-names.yaml", "--env-file", "examples/sandbox.env")
	if code != exitProblem || !strings.HasSuffix(stdout, "5 errors in 1 file\n") {
		t.Errorf("code %d, output:\n%s", code, stdout)
	}
	_, stderr, code := runEngine("validate")
	if code != exitUsage || !strings.Contains(stderr, "name at least one pipeline file or folder") {
		t.Errorf("code %d, stderr %q", code, stderr)
	}
	stdout, _, code = runEngine("validate", "no/such/folder")
	if code != exitProblem || !strings.Contains(stdout, "no/such/folder: no such file or folder") {
		t.Errorf("code %d, output %q", code, stdout)
	}
	_, stderr, code = runEngine("validate", "--env-file", "examples/sandbox.env", "--connections", "no/such/connections.yaml", "pipelines/")
	if code != exitUsage || !strings.Contains(stderr, "--connections no/such/connections.yaml: no such file") {
		t.Errorf("--connections naming no file: code %d, stderr %q", code, stderr)
	}
	// A folder of connections only: engine run refuses it, and so does
	// validate now. A .YAML file is a pipeline file too.
	only := t.TempDir()
	copyFile(t, "pipelines/connections.yaml", filepath.Join(only, "connections.yaml"))
	stdout, _, code = runEngine("validate", "--env-file", "examples/sandbox.env", only)
	if code != exitProblem || !strings.Contains(stdout, "no pipelines in "+only+": only connections") {
		t.Errorf("a folder of connections only: code %d, output %q", code, stdout)
	}
	copyFile(t, "pipelines/braze-segment-to-sessionm-tags.yaml", filepath.Join(only, "Tags.YAML"))
	stdout, _, code = runEngine("validate", "--env-file", "examples/sandbox.env", only)
	if code != exitOK || stdout != "ok: 1 pipeline in 2 files\n" {
		t.Errorf("a folder with Tags.YAML: code %d, output %q", code, stdout)
	}
}

// A problem many files share (an unset secret) is printed at its first
// three places, then counted: 300 pipelines without their environment
// printed 1,335 lines (a QA run). --all prints every place.
func TestValidateCountsAProblemManyFilesShare(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, "pipelines/connections.yaml", filepath.Join(dir, "connections.yaml"))
	raw, err := os.ReadFile("pipelines/offer-issued-to-braze-campaign.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		pipeline := strings.Replace(string(raw), "/hooks/sessionm/offers", fmt.Sprintf("/hooks/sessionm/offers/%d", i), 1)
		pipeline = strings.Replace(pipeline, "${secret:SESSIONM_WEBHOOK_TOKEN}", "${secret:NOT_SET_ANYWHERE}", 1)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("offers-%d.yaml", i)), []byte(pipeline), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	unset := "secret NOT_SET_ANYWHERE is not set"
	stdout, _, code := runEngine("validate", "--env-file", "examples/sandbox.env", dir)
	if code != exitProblem || strings.Count(stdout, unset) != 3 || !strings.Contains(stdout, "offers-2.yaml:") || strings.Contains(stdout, "offers-3.yaml:") ||
		!strings.Contains(stdout, "  ... and 2 more places with the same problem (--all lists them)\n") || !strings.HasSuffix(stdout, "5 errors in 5 files\n") {
		t.Errorf("code %d, output:\n%s", code, stdout)
	}
	// A problem with no key path is its file's alone: never folded.
	for i := range 4 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("broken-%d.yaml", i)), []byte("- a list, not a mapping\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	stdout, _, _ = runEngine("validate", "--env-file", "examples/sandbox.env", dir)
	for i := range 4 {
		if !strings.Contains(stdout, fmt.Sprintf("broken-%d.yaml:", i)) {
			t.Errorf("broken-%d.yaml's problem is not printed:\n%s", i, stdout)
		}
	}
	stdout, _, code = runEngine("validate", "--all", "--env-file", "examples/sandbox.env", dir)
	if code != exitProblem || strings.Count(stdout, unset) != 5 || strings.Contains(stdout, "more places") {
		t.Errorf("--all: code %d, output:\n%s", code, stdout)
	}
}

// Every command answers --help on stdout with exit 0.
func TestHelp(t *testing.T) {
	for _, c := range commands {
		stdout, stderr, code := runEngine(c.name, "--help")
		if c.name == "help" {
			stdout, stderr, code = runEngine("help", "validate")
		}
		if code != exitOK || !strings.Contains(stdout, "usage: engine") || stderr != "" {
			t.Errorf("%s --help: code %d, stdout %q, stderr %q", c.name, code, stdout, stderr)
		}
	}
	if stdout, _, code := runEngine("help", "dlq", "list"); code != exitOK || !strings.Contains(stdout, "usage: engine dlq list") {
		t.Errorf("help dlq list: code %d, stdout %q", code, stdout)
	}
	if stdout, _, code := runEngine("validate", "--help=true"); code != exitOK || !strings.Contains(stdout, "usage: engine validate") {
		t.Errorf("validate --help=true: code %d, stdout %q", code, stdout)
	}
	stdout, _, code := runEngine("--help")
	if code != exitOK || !strings.Contains(stdout, "dry-run") {
		t.Errorf("engine --help: code %d, %q", code, stdout)
	}
	_, stderr, code := runEngine("frobnicate")
	if code != exitUsage || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: code %d, %q", code, stderr)
	}
}

// A mistyped command, subcommand or flag is named with the closest right
// one and a pointer to --help, not followed by the whole help: the
// suggestion would scroll out of sight.
func TestCommandLineTypos(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    string
		notWant string
	}{
		{[]string{"valdate"}, "engine: unknown command \"valdate\"; did you mean validate?\nRun 'engine --help' for the list of commands.\n", ""},
		{[]string{"dryrun", "x.yaml"}, `unknown command "dryrun"; did you mean dry-run?`, "commands:"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"` + "\n\nengine: declarative", "did you mean"},
		{[]string{"validate", "--env-fil", "x", "pipelines/"}, "engine validate: unknown flag --env-fil; did you mean --env-file?\nRun 'engine validate --help' for its flags.\n", ""},
		{[]string{"validate", "-env-fil=x", "pipelines/"}, "engine validate: unknown flag -env-fil; did you mean --env-file?", "flags:"},
		{[]string{"dry-run", "--bogus"}, "engine dry-run: unknown flag --bogus\nRun 'engine dry-run --help' for its flags.\n", "did you mean"},
		{[]string{"dry-run", "x.yaml", "--rows", "x"}, `engine dry-run: --rows "x": give a whole number`, "flags:"},
		{[]string{"dry-run", "x.yaml", "--event"}, "engine dry-run: --event needs a value", "flags:"},
		{[]string{"run", "--until-done=maybe", "pipelines/"}, `engine run: --until-done "maybe": give true or false`, "flags:"},
		{[]string{"dlq", "lst"}, "engine dlq: unknown subcommand \"lst\"; did you mean list?\nRun 'engine dlq --help' for the list of subcommands.\n", ""},
		{[]string{"dlq", "list", "--limt", "3"}, "engine dlq list: unknown flag --limt; did you mean --limit?", "flags:"},
	} {
		stdout, stderr, code := runEngine(tc.args...)
		if code != exitUsage || stdout != "" {
			t.Errorf("%v: code %d, stdout %q; want %d and nothing", tc.args, code, stdout, exitUsage)
		}
		if !strings.Contains(stderr, tc.want) || (tc.notWant != "" && strings.Contains(stderr, tc.notWant)) {
			t.Errorf("%v: stderr\n%s\nwant it to say %q and not %q", tc.args, stderr, tc.want, tc.notWant)
		}
	}
}

// The built binary runs as users run it.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildEngine(t)
	out, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "engine ") {
		t.Errorf("version: %v %q", err, out)
	}
	cmd := exec.Command(bin, "validate", "pipelines/")
	cmd.Env = append(os.Environ(), "ENGINE_SECRETS_DIR=")
	for _, line := range strings.Split(mustRead(t, "examples/sandbox.env"), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			cmd.Env = append(cmd.Env, line)
		}
	}
	out, err = cmd.Output()
	if err != nil || string(out) != "ok: 5 pipelines in 6 files\n" {
		t.Errorf("validate with the settings in the environment: %v %q", err, out)
	}
	t.Run("sandbox", func(t *testing.T) { testSandboxProcess(t, bin, "127.0.0.1:0") })
	// On every address, it prints and writes 127.0.0.1, which HTTP_PROXY
	// leaves alone, not [::] or 0.0.0.0, which it would get, credentials
	// and all, and which the pipelines refuse for that.
	t.Run("sandbox on every address", func(t *testing.T) { testSandboxProcess(t, bin, ":0") })
}

// testSandboxProcess runs engine sandbox on addr as a process: it prints
// where it is reached from this machine and the settings, writes them
// with --env-out so the pipelines validate against them, serves, and
// stops cleanly on SIGTERM.
func testSandboxProcess(t *testing.T, bin, addr string) {
	envFile := filepath.Join(t.TempDir(), "sandbox.env")
	cmd := exec.Command(bin, "sandbox", "--addr", addr, "--env-out", envFile)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	var banner []string
	for lines.Scan() {
		banner = append(banner, lines.Text())
		if strings.HasPrefix(lines.Text(), "Stop with") {
			break
		}
	}
	first := strings.Join(banner, "\n")
	m := regexp.MustCompile(`on (http://127\.0\.0\.1:\d+) `).FindStringSubmatch(first)
	if m == nil {
		t.Fatalf("no address in the banner:\n%s\nstderr: %s", first, stderr.String())
	}
	base := m[1]
	for _, want := range []string{"SESSIONM_CORE_URL=" + base + "/sessionm/core", "BRAZE_REST_URL=" + base + "/braze", "SESSIONM_API_KEY=sandbox-core-key"} {
		if !strings.Contains(first, want) {
			t.Errorf("banner lacks %q:\n%s", want, first)
		}
	}
	resp, err := http.Get(base + "/_sandbox/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /_sandbox/: %d", resp.StatusCode)
	}
	if written := mustRead(t, envFile); !strings.Contains(written, "\nSESSIONM_CORE_URL="+base+"/sessionm/core\n") || strings.Contains(written, "also accepted") {
		t.Errorf("--env-out wrote:\n%s", written)
	}
	out, err := exec.Command(bin, "validate", "--env-file", envFile, "--env-file", "examples/sandbox.env", "pipelines/").Output()
	if err != nil || string(out) != "ok: 5 pipelines in 6 files\n" {
		t.Errorf("validate with --env-file from --env-out: %v %q", err, out)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sandbox exit after SIGTERM: %v; stderr %s", err, stderr.String())
	}
	if !strings.Contains(string(rest), "engine sandbox: stopped") {
		t.Errorf("no goodbye: %q", rest)
	}
}

func mustRead(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSandboxCommandErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"sandbox", "pipelines/"}, exitUsage, `takes no arguments, got "pipelines/"`},
		{[]string{"sandbox", "--seed", "no/such/seeds"}, exitProblem, "seed folder no/such/seeds: not found; it should hold sessionm.yaml and braze.yaml"},
		{[]string{"sandbox", "--addr", "256.0.0.1:1"}, exitProblem, "cannot listen on 256.0.0.1:1"},
		// Values that meant something else than written (a QA run).
		{[]string{"sandbox", "--sessionm-rate-limit", "NaN"}, exitUsage, "--sessionm-rate-limit NaN: give requests per second, 0 or more"},
		{[]string{"sandbox", "--sessionm-rate-limit", "-1"}, exitUsage, "--sessionm-rate-limit -1: give requests per second"},
		{[]string{"sandbox", "--journal-size", "0"}, exitUsage, "--journal-size 0: give how many requests the journal keeps, 1 or more"},
		{[]string{"sandbox", "--journal-mib", "0"}, exitUsage, "--journal-mib 0: give the MiB of bodies the journal keeps, 1 or more"},
		{[]string{"sandbox", "--generated-users", "-1"}, exitUsage, "--generated-users -1: give a number of users, 0 or more"},
	}
	for _, tt := range tests {
		_, stderr, code := runEngine(tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: code %d, stderr %q; want %d and %q", tt.args, code, stderr, tt.code, tt.want)
		}
	}
}

// dry-run --sandbox answers lookups from the emulators over loopback:
// F3's wallet comes from the seeded SessionM wallet, with the expired and
// redeemed offers dropped by the pipeline. Without --env-file the
// settings the pipeline needs come from the built-in sandbox.env, as with
// engine run --sandbox.
func TestDryRunAgainstTheSandbox(t *testing.T) {
	for _, envFile := range [][]string{{"--env-file", "examples/sandbox.env"}, nil} {
		t.Run(fmt.Sprintf("env file %v", envFile), func(t *testing.T) { testDryRunAgainstTheSandbox(t, envFile) })
	}
	_, stderr, code := runEngine("dry-run", "--sandbox", "--fixtures", "examples/fixtures", "pipelines/wallet-for-connected-content.yaml")
	if code != exitUsage || !strings.Contains(stderr, "--fixtures or --sandbox, not both") {
		t.Fatalf("both lookups sources: code %d, %q", code, stderr)
	}
}

// --now fixes Liquid's 'now' too, so a template that reads it gives the
// same dry run whenever it runs.
func TestDryRunNowFixesLiquidNow(t *testing.T) {
	dir := t.TempDir()
	pipeline := filepath.Join(dir, "clock.yaml")
	if err := os.WriteFile(pipeline, []byte(`source:
  type: http
  method: GET
  path: /clock
respond:
  body:
    liquid: "{{ 'now' | date: '%Y-%m-%d %H:%M' }}"
    today: "{{ 'today' | time_zone: 'America/New_York' | date: '%Y-%m-%d %H:%M' }}"
    variable: "{{ now | date: '%Y-%m-%d %H:%M' }}"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runEngine("dry-run", pipeline, "--path", "/clock", "--now", "2026-11-29T10:00:00Z", "--format", "json")
	for _, want := range []string{`"liquid": "2026-11-29 10:00"`, `"today": "2026-11-29 05:00"`, `"variable": "2026-11-29 10:00"`} {
		if code != exitOK || !strings.Contains(stdout, want) {
			t.Errorf("want %s; code %d; stdout:\n%s\nstderr: %s", want, code, stdout, stderr)
		}
	}
}

// A credential header built from secrets in an expr step, which no masker
// knows as a whole, is shown by its scheme alone (a security review saw
// the password's part of the base64 printed).
func TestDryRunShowsCredentialHeadersByName(t *testing.T) {
	dir := t.TempDir()
	secretsDir := filepath.Join(dir, "secrets")
	files := map[string]string{
		filepath.Join(secretsDir, "PARTNER_USER"): "partner-user",
		filepath.Join(secretsDir, "PARTNER_PW"):   "Pw-Short",
		filepath.Join(dir, "connections.yaml"): `connections:
  partner:
    type: http
    base_url: https://partner.example.com
`,
		filepath.Join(dir, "basic.yaml"): `source: { type: http, path: /in }
steps:
  - name: basic
    expr: toBase64("${secret:PARTNER_USER}" + ":" + "${secret:PARTNER_PW}")
target:
  connection: partner
  method: POST
  path: /x
  headers:
    Authorization: "Basic {{ basic }}"
    X-Partner-Token: "{{ basic }}"
  body: { a: 1 }
`,
	}
	for name, content := range files {
		if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	event := filepath.Join(dir, "e.json")
	if err := os.WriteFile(event, []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runEngine("dry-run", "--secrets-dir", secretsDir, filepath.Join(dir, "basic.yaml"), "--event", event, "--path", "/in")
	encoded := "OlB3LVNob3J0" // base64 of ":Pw-Short", the part no masker knows
	if code != exitOK || !strings.Contains(stdout, "Authorization: Basic ****\n") || !strings.Contains(stdout, "X-Partner-Token: ****\n") || strings.Contains(stdout, encoded) {
		t.Errorf("code %d; stdout:\n%s\nstderr: %s", code, stdout, stderr)
	}
}

// dry-run keeps the caller's headers as engine run does: a credential
// header is not there for a template to read.
func TestDryRunDropsCredentialHeaders(t *testing.T) {
	dir := t.TempDir()
	pipeline := filepath.Join(dir, "echo.yaml")
	if err := os.WriteFile(pipeline, []byte(`source:
  type: http
  method: GET
  path: /echo
respond:
  body:
    headers: "{{ request.headers }}"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runEngine("dry-run", pipeline, "--header", "Authorization: Bearer CALLERTOKEN", "--header", "Cookie: s=CALLERCOOKIE", "--header", "X-Kind: kept-kind")
	if code != exitOK || strings.Contains(stdout, "CALLER") || !strings.Contains(stdout, "kept-kind") {
		t.Fatalf("code %d; stdout:\n%s\nstderr: %s", code, stdout, stderr)
	}
}

// Nor is the header a route checks an HMAC signature in, whatever it is
// called.
func TestDryRunDropsTheHMACSignatureHeader(t *testing.T) {
	dir := t.TempDir()
	pipeline := filepath.Join(dir, "echo.yaml")
	files := map[string]string{
		pipeline: `source:
  type: http
  path: /echo
  auth: { hmac: { header: X-Braze-Digest, secret: "${env:DIGEST_SECRET}" } }
respond:
  body:
    headers: "{{ request.headers }}"
`,
		filepath.Join(dir, "digest.env"): "DIGEST_SECRET=s3cret\n",
		filepath.Join(dir, "event.json"): `{"n":1}`,
	}
	for name, content := range files {
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stdout, stderr, code := runEngine("dry-run", "--env-file", filepath.Join(dir, "digest.env"), pipeline, "--event", filepath.Join(dir, "event.json"),
		"--header", "X-Braze-Digest: CALLERDIGEST", "--header", "X-Kind: kept-kind")
	if code != exitOK || strings.Contains(stdout, "CALLER") || !strings.Contains(stdout, "kept-kind") {
		t.Fatalf("code %d; stdout:\n%s\nstderr: %s", code, stdout, stderr)
	}
}

func testDryRunAgainstTheSandbox(t *testing.T, envFile []string) {
	args := append([]string{"dry-run", "--sandbox"}, envFile...)
	stdout, stderr, code := runEngine(append(args, "--format", "json",
		"--now", "2026-11-29T10:00:00Z", "--header", "Authorization: Bearer sandbox-wallet-token",
		"--path", "/wallet/3c1d7e2a-32f5-11ef-b3e4-0242ac120002", "pipelines/wallet-for-connected-content.yaml")...)
	if code != exitOK {
		t.Fatalf("code %d, stderr %s\n%s", code, stderr, stdout)
	}
	var rep struct {
		Lookups []struct {
			Response struct {
				Status int    `json:"status"`
				From   string `json:"from"`
			} `json:"response"`
		} `json:"lookups"`
		Response struct {
			Body struct {
				AvailablePoints int `json:"available_points"`
				OfferCount      int `json:"offer_count"`
			} `json:"body"`
		} `json:"response"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	from := rep.Lookups[0].Response.From
	if rep.Lookups[0].Response.Status != 200 || !strings.HasPrefix(from, "POST http://127.0.0.1:") || !strings.HasSuffix(from, "/sessionm/connect/offers/api/2.0/offers/get_user_offers") {
		t.Fatalf("lookup answered %d from %q", rep.Lookups[0].Response.Status, from)
	}
	if rep.Response.Body.AvailablePoints != 1350 || rep.Response.Body.OfferCount != 1 {
		t.Fatalf("reply %+v, want 1350 points and the one live offer", rep.Response.Body)
	}
}

// engine run --csv --until-done imports a file against the in-process
// emulators and exits when every row has an outcome: as soon as the file
// is read, not at the next progress tick (made an hour here).
func TestRunCSVUntilDone(t *testing.T) {
	every := csvProgressEvery
	csvProgressEvery = time.Hour
	t.Cleanup(func() { csvProgressEvery = every })
	data := t.TempDir()
	type result struct {
		stdout, stderr string
		code           int
	}
	finished := make(chan result, 1)
	go func() {
		stdout, stderr, code := runEngine("run", "--sandbox", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--data", data, "--log-level", "warn",
			"--csv", "examples/csv/braze-segment-export.csv", "--until-done", "pipelines/")
		finished <- result{stdout, stderr, code}
	}()
	var stdout, stderr string
	var code int
	select {
	case res := <-finished:
		stdout, stderr, code = res.stdout, res.stderr, res.code
	case <-time.After(time.Minute):
		t.Fatal("engine run --until-done was still running a minute after it started: it waits for a progress tick to notice the import is done")
	}
	if code != exitOK {
		t.Fatalf("code %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{
		// The third row has no user_id: the filter drops it, nothing is sent.
		"csv examples/csv/braze-segment-export.csv (segment-csv-to-sessionm-tags): 4 rows read, 4 sent, 3 delivered, 1 filtered out, 0 dead-lettered, 0 broken rows, 0 handled before; done",
		"engine run: stopped; every accepted event was handled",
		// It ends by itself: it says so, rather than how to stop it.
		untilDoneBannerEnd + "\n",
		"engine run: done with the --csv files (the summary follows); stopping, in-flight deliveries get 30s\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	for _, hint := range []string{"Ctrl-C", "curl", "Try a SessionM"} {
		if strings.Contains(stdout, hint) {
			t.Errorf("a run with --until-done, which ends by itself, mentions %q:\n%s", hint, stdout)
		}
	}
	// The same file again: the checkpoint says it was imported. This run
	// puts the emulators on a port of its choosing.
	emulators := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	stdout, _, _ = runEngine("run", "--sandbox", "--sandbox-addr", emulators, "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--data", data, "--log-level", "warn",
		"--csv", "examples/csv/braze-segment-export.csv", "--until-done", "pipelines/")
	if !strings.Contains(stdout, "4 rows read, 0 sent, 0 delivered, 0 filtered out, 0 dead-lettered, 0 broken rows, 4 handled before; done") {
		t.Errorf("second run:\n%s", stdout)
	}
	if want := "SessionM and Braze emulators: http://" + emulators + " "; !strings.Contains(stdout, want) {
		t.Errorf("second run, with --sandbox-addr %s: the banner lacks %q:\n%s", emulators, want, stdout)
	}
}

func TestRunUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"run"}, "name the pipelines to run"},
		{[]string{"run", "--until-done", "pipelines/"}, "--until-done needs --csv files"},
		{[]string{"run", "--csv", "no/such.csv", "pipelines/"}, "--csv no/such.csv"},
		{[]string{"run", "--csv", "nope=examples/csv/braze-segment-export.csv", "pipelines/"}, `"nope" is not a csv pipeline here`},
		{[]string{"run", "--log-format", "xml", "pipelines/"}, "--log-format is text or json"},
		{[]string{"run", "--drain", "-1s", "pipelines/"}, "--drain is -1s"},
		{[]string{"run", "--grace", "-5s", "pipelines/"}, "--grace is -5s; it is how long a stop waits for in-flight deliveries, 0 or more"},
		{[]string{"run", "--sandbox-addr", "127.0.0.1:8081", "pipelines/"}, "--sandbox-addr is where --sandbox serves the emulators; add --sandbox"},
		{[]string{"run", "--sandbox", "--sandbox-addr", "8081", "pipelines/"}, "--sandbox-addr is host:port"},
		{[]string{"run", "--sandbox", "--sandbox-addr", "0.0.0.0:8081", "pipelines/"}, "--sandbox-addr 0.0.0.0:8081 is not a loopback address"},
		{[]string{"run", "--addr", "127.0.0.1", "pipelines/"}, "--addr is host:port or :port"},
		{[]string{"run", "--max-header-size", "0", "pipelines/"}, "--max-header-size is a number of KiB from 1 to 1024, not 0"},
		{[]string{"run", "--max-connections", "-1", "pipelines/"}, "--max-connections is a number from 1 up, not -1"},
		{[]string{"run", "--removal-quiet", "-1s", "pipelines/"}, "--removal-quiet is -1s; it is how long a deleted file must stay gone"},
	}
	for _, tt := range tests {
		_, stderr, code := runEngine(append(tt.args, "--env-file", "examples/sandbox.env")...)
		if code != exitUsage || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: code %d, %q; want 2 and %q", tt.args, code, stderr, tt.want)
		}
	}
}

// The admin listener replays and drops dead letters for whoever reaches
// it, so engine run refuses to put it anywhere but loopback unless told
// so; a host name other than localhost is no loopback either.
func TestRunAdminAddrMustBeLoopback(t *testing.T) {
	// --until-done without --csv stops a run that gets past the check
	// before anything listens.
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:0", "example.com:0"} {
		_, stderr, code := runEngine("run", "--env-file", "examples/sandbox.env", "--until-done", "--admin-addr", addr, "pipelines/")
		if code != exitUsage || !strings.Contains(stderr, "--admin-addr "+addr+" is not a loopback address") || !strings.Contains(stderr, "--admin-allow-remote") {
			t.Errorf("--admin-addr %s: code %d, %q; want 2, the risk and a word about --admin-allow-remote", addr, code, stderr)
		}
	}
	if _, stderr, code := runEngine("run", "--env-file", "examples/sandbox.env", "--until-done", "--admin-addr", "8079", "pipelines/"); code != exitUsage || !strings.Contains(stderr, "host:port") {
		t.Errorf("--admin-addr 8079: code %d, %q; want 2 and host:port", code, stderr)
	}
	if stdout, _, _ := runEngine("run", "--help"); !strings.Contains(stdout, "--admin-allow-remote") {
		t.Errorf("engine run --help does not mention --admin-allow-remote:\n%s", stdout)
	}
	// Accepted addresses get past the check.
	for _, args := range [][]string{
		{"--admin-addr", "127.0.0.1:0"},
		{"--admin-addr", "localhost:0"},
		{"--admin-addr", "[::1]:0"},
		{"--admin-addr", ""},
		{"--admin-addr", "0.0.0.0:0", "--admin-allow-remote"},
	} {
		args = append([]string{"run", "--env-file", "examples/sandbox.env", "--until-done"}, append(args, "pipelines/")...)
		if _, stderr, code := runEngine(args...); code != exitUsage || !strings.Contains(stderr, "--until-done needs --csv files") {
			t.Errorf("%v: code %d, %q; want the address taken (and --until-done refused)", args, code, stderr)
		}
	}
}

// A port another program holds, on either listener, is named with what to
// do, and the run ends before it accepts anything.
func TestRunSaysWhatToDoWithAPortInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	for _, tc := range []struct {
		flags []string
		want  []string
	}{
		{[]string{"--addr", addr, "--admin-addr", ""}, []string{"cannot listen on " + addr + ": ", "another engine or program on that port? pass another --addr"}},
		{[]string{"--addr", "127.0.0.1:0", "--admin-addr", addr}, []string{"cannot listen on --admin-addr " + addr + ": ", "pass --admin-addr 127.0.0.1:0"}},
	} {
		args := append([]string{"run", "--env-file", "examples/sandbox.env", "--data", t.TempDir()}, append(tc.flags, "pipelines/")...)
		_, stderr, code := runEngine(args...)
		if code != exitProblem {
			t.Errorf("%v: exit %d, want %d (%s)", tc.flags, code, exitProblem, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%v: %q does not say %q", tc.flags, stderr, w)
			}
		}
	}
}

// A data folder the engine may not write gets what to do; other failures
// are told as they are. The tests run as root, which permissions do not
// stop, so the errors are made here (chattr +i gave the same message by
// hand, as did a folder owned by another user for uid 65534).
func TestDataFolderProblem(t *testing.T) {
	const hint = "(the engine needs to write its data folder: give --data a folder the user it runs as, uid 1000, can write)"
	for _, tc := range []struct {
		err  error
		hint bool
	}{
		{fmt.Errorf("data folder /data: %w", &os.PathError{Op: "mkdir", Path: "/data", Err: syscall.EACCES}), true},
		{fmt.Errorf("opening the inbox /data/inbox.db: %w", &os.PathError{Op: "open", Path: "/data/inbox.db", Err: syscall.EPERM}), true},
		{fmt.Errorf("opening the inbox /data/inbox.db: %w", &os.PathError{Op: "open", Path: "/data/inbox.db", Err: syscall.EROFS}), true},
		{fmt.Errorf("opening the inbox /data/inbox.db: %w", &os.PathError{Op: "write", Path: "/data/inbox.db", Err: syscall.ENOSPC}), false},
	} {
		got := dataFolderProblem(tc.err, 1000)
		if !strings.HasPrefix(got, tc.err.Error()) || strings.HasSuffix(got, hint) != tc.hint {
			t.Errorf("%v: %q (hint wanted: %v)", tc.err, got, tc.hint)
		}
	}
}

// collectorSettings puts Go's defaults back for a test of tuneGC, and
// restores what was set when it ends. It returns a reader of the current
// settings.
func collectorSettings(t *testing.T) (current func() (int, int64)) {
	prevPercent := debug.SetGCPercent(100)
	prevLimit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(prevPercent); debug.SetMemoryLimit(prevLimit) })
	return func() (int, int64) {
		p := debug.SetGCPercent(-1)
		debug.SetGCPercent(p)
		return p, debug.SetMemoryLimit(-1) // a negative limit only reads it
	}
}

// engine run sets its collector unless GOGC or GOMEMLIMIT is given.
func TestTuneGCLeavesSettingsTheUserGave(t *testing.T) {
	current := collectorSettings(t)
	tuneGC(func(string) string { return "" }, runMemoryLimit)
	if p, l := current(); p != runGCPercent || l != runMemoryLimit {
		t.Fatalf("unset: GOGC %d, limit %d; want %d, %d", p, l, runGCPercent, runMemoryLimit)
	}
	debug.SetGCPercent(100)
	debug.SetMemoryLimit(math.MaxInt64)
	tuneGC(func(name string) string { return map[string]string{"GOGC": "100", "GOMEMLIMIT": "1GiB"}[name] }, runMemoryLimit)
	if p, l := current(); p != 100 || l != math.MaxInt64 {
		t.Fatalf("given: GOGC %d, limit %d; want both left alone", p, l)
	}
}

// engine run's memory limit is 96 MiB, or twice what is alive when more
// is (a full respond cache, the events held through an outage), read from
// the last collection.
func TestMemoryLimitFollowsTheLiveHeap(t *testing.T) {
	for _, tt := range []struct{ live, want int64 }{
		{0, 96 << 20},
		{40 << 20, 96 << 20},
		{48 << 20, 96 << 20},
		{100 << 20, 200 << 20},
	} {
		if got := memoryLimitFor(tt.live); got != tt.want {
			t.Errorf("memoryLimitFor(%d) = %d, want %d", tt.live, got, tt.want)
		}
	}
	held := make([]byte, 120<<20)
	for i := range held {
		held[i] = 1 // touched, so it is memory
	}
	runtime.GC()
	if live := liveBytes(); live < 120<<20 {
		t.Errorf("liveBytes %d with 120 MiB held", live)
	}
	runtime.KeepAlive(held)
}

// engine sandbox runs the emulators with engine run's GOGC and a memory
// limit of their own, with room for a journal larger than the
// default. The address cannot be listened on, so the command stops after
// setting them.
func TestSandboxTunesGC(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	for _, tt := range []struct {
		journal []string
		limit   int64
	}{
		{nil, emulatorMemoryLimit},
		{[]string{"--journal-size", "1000"}, emulatorMemoryLimit},
		{[]string{"--journal-size", "1000000"}, emulatorMemoryLimit + 900_000<<10},
		{[]string{"--journal-mib", "512"}, emulatorMemoryLimit + 384<<20},
	} {
		current := collectorSettings(t)
		var stdout, stderr strings.Builder
		code := runSandbox(append([]string{"--addr", "127.0.0.1:99999"}, tt.journal...), &stdout, &stderr)
		if code != exitProblem || !strings.Contains(stderr.String(), "cannot listen") {
			t.Fatalf("%v: exit %d, want %d for the address; stderr: %s", tt.journal, code, exitProblem, stderr.String())
		}
		if p, l := current(); p != runGCPercent || l != tt.limit {
			t.Errorf("%v: GOGC %d, limit %d; want %d, %d", tt.journal, p, l, runGCPercent, tt.limit)
		}
	}
}

// The status line counts a filtered-out row as done, apart from the
// delivered ones, and tells how many rows there are to do: estimated, with
// a ~, until the whole file is read, exact after.
func TestCSVProgressLine(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		p    runner.CSVProgress
		want string
	}{
		{runner.CSVProgress{File: "dir/a.csv", Started: now.Add(-time.Second)},
			"\ra.csv: 0 rows done, 0 filtered out, 0 failed, 0 rows/s, ETA ?   "},
		{runner.CSVProgress{File: "dir/a.csv", Rows: 1000, Queued: 1000, Delivered: 400, Filtered: 100, Failed: 1, Broken: 2, Bytes: 10_000, Size: 600_000, Started: now.Add(-time.Second)},
			"\ra.csv: 501 of ~60000 rows done, 100 filtered out, 3 failed, 501 rows/s, ETA 1m59s   "},
		{runner.CSVProgress{File: "dir/a.csv", Rows: 4, Queued: 4, Delivered: 1, Filtered: 1, ReadDone: true, Started: now.Add(-time.Second)},
			"\ra.csv: 2 of 4 rows done, 1 filtered out, 0 failed, 2 rows/s, ETA 1s   "},
		// Rows waiting for a retry are said; when only they are left, the
		// line says so rather than an ETA of 0s for minutes (a QA run).
		{runner.CSVProgress{File: "dir/a.csv", Rows: 10, Queued: 10, Delivered: 4, Retrying: 2, ReadDone: true, Started: now.Add(-time.Second)},
			"\ra.csv: 4 of 10 rows done, 0 filtered out, 0 failed, 4 rows/s, 2 waiting for a retry, ETA 2s   "},
		{runner.CSVProgress{File: "dir/a.csv", Rows: 10, Queued: 10, Delivered: 8, Retrying: 2, ReadDone: true, Started: now.Add(-time.Second)},
			"\ra.csv: 8 of 10 rows done, 0 filtered out, 0 failed, 8 rows/s, the rest (2) waiting for a retry   "},
	}
	for _, tt := range tests {
		var b strings.Builder
		showProgress(&b, []runner.CSVProgress{{File: "settled.csv", ReadDone: true, Finished: true}, tt.p}, now, nil, 0)
		if b.String() != tt.want {
			t.Errorf("%+v: status line %q, want %q", tt.p, b.String(), tt.want)
		}
	}
}

// The rate shown is that of the last ten seconds, once there is a second
// of them: the average since the start sank through a tail of retries.
func TestCSVProgressRate(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	p := runner.CSVProgress{File: "a.csv", Rows: 100_000, Queued: 100_000, ReadDone: true, Started: start}
	rates := &progressRates{}
	line := func(at time.Duration, delivered int) string {
		p.Delivered = delivered
		var b strings.Builder
		showProgress(&b, []runner.CSVProgress{p}, start.Add(at), rates, 0)
		return b.String()
	}
	line(60*time.Second, 60_000) // 1,000 rows/s so far
	if got := line(60*time.Second+500*time.Millisecond, 60_100); !strings.Contains(got, " 993 rows/s") {
		t.Errorf("within the first second of samples: %q; want the average", got)
	}
	if got := line(62*time.Second, 60_100); !strings.Contains(got, " 50 rows/s, ETA 13m18s") {
		t.Errorf("two seconds later, 100 rows done: %q; want 50 rows/s and its ETA", got)
	}
	if got := line(75*time.Second, 60_100); !strings.Contains(got, " 0 rows/s, ETA ?") {
		t.Errorf("thirteen seconds with no row done: %q; want 0 rows/s", got)
	}
	if got := line(76*time.Second, 61_100); !strings.Contains(got, " 71 rows/s") {
		t.Errorf("a thousand rows in the last second: %q; want them over the 14 s since the baseline, 71 rows/s", got)
	}
}

// Until the whole file is read, the rows to send are estimated from the
// bytes read (rows are read only as fast as the workers take them, so
// the exact count comes at the very end).
func TestCSVEstimate(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	tests := []struct {
		name         string
		p            runner.CSVProgress
		total        int
		known, exact bool
		rate         float64
		eta          time.Duration
	}{
		{"nothing read yet", runner.CSVProgress{Size: 1000, Started: ago(time.Second)},
			0, false, false, 0, -1},
		{"read, nothing done yet", runner.CSVProgress{Rows: 10, Queued: 10, Bytes: 100, Size: 1000, Started: ago(time.Second)},
			100, true, false, 0, -1},
		{"a sixtieth read", runner.CSVProgress{Rows: 1000, Queued: 1000, Delivered: 500, Bytes: 10_000, Size: 600_000, Started: ago(time.Second)},
			60000, true, false, 500, 119 * time.Second},
		// Rows handled before are read too, and count in the rows per byte,
		// but not among the rows to send.
		{"resumed half-way", runner.CSVProgress{Rows: 2000, Skipped: 1000, Queued: 1000, Delivered: 900, Bytes: 20_000, Size: 40_000, Started: ago(2 * time.Second)},
			3000, true, false, 450, 4666666666},
		{"broken rows are not sent", runner.CSVProgress{Rows: 100, Broken: 10, Queued: 90, Delivered: 90, Bytes: 1000, Size: 2000, Started: ago(time.Second)},
			190, true, false, 90, time.Second + 111111111},
		{"read to the end, its end not seen yet", runner.CSVProgress{Rows: 100, Queued: 100, Delivered: 50, Bytes: 1000, Size: 1000, Started: ago(time.Second)},
			100, true, false, 50, time.Second},
		{"the whole file read", runner.CSVProgress{Rows: 100, Broken: 3, Queued: 97, Delivered: 90, Filtered: 2, Failed: 1, Bytes: 900, Size: 1000, ReadDone: true, Started: ago(3 * time.Second)},
			97, true, true, 31, 129032258},
		{"more done than estimated", runner.CSVProgress{Rows: 10, Queued: 10, Delivered: 30, Bytes: 1000, Size: 1000, Started: ago(time.Second)},
			10, true, false, 30, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := estimateCSV(tt.p, now)
			if e.total != tt.total || e.known != tt.known || e.exact != tt.exact || e.rate != tt.rate || e.eta != tt.eta {
				t.Errorf("estimate %+v, want total %d known %v exact %v rate %v eta %v", e, tt.total, tt.known, tt.exact, tt.rate, tt.eta)
			}
		})
	}
}

// The summary's last words say what is left to do about each file: what
// its own rows wait for. It said a finished file still had rows waiting
// for a retry when another file of the pipeline had them.
func TestCSVSummaryStates(t *testing.T) {
	tests := []struct {
		p    runner.CSVProgress
		want string
	}{
		{runner.CSVProgress{File: "a.csv", Err: "cannot open a.csv"}, "csv a.csv: not imported: cannot open a.csv"},
		{runner.CSVProgress{File: "a.csv", Rows: 40, Queued: 40, Delivered: 30, Err: "pipeline p was removed"}, "; stopped: pipeline p was removed\n"},
		{runner.CSVProgress{File: "a.csv", Rows: 40, Queued: 40, Delivered: 30, Retrying: 3, Err: "pipeline p was removed"}, "; stopped: pipeline p was removed; 3 of the rows it sent wait in the inbox for a retry\n"},
		{runner.CSVProgress{File: "a.csv", Earlier: runner.RowOutcomes{Delivered: 3}}, "csv a.csv (): not imported by this run; rows an earlier run left in the inbox or as dead letters: 3 delivered, 0 filtered out, 0 dead-lettered"},
		// After a restart, the rows the last run left in the inbox count
		// among those handled before, not among those sent: 30 read, 18
		// sent, 18 delivered, 12 handled before, of which 7 delivered now.
		{runner.CSVProgress{File: "a.csv", Rows: 30, Queued: 18, Delivered: 18, Skipped: 12, Earlier: runner.RowOutcomes{Delivered: 6, Failed: 1}, ReadDone: true, Finished: true},
			"30 rows read, 18 sent, 18 delivered, 0 filtered out, 0 dead-lettered, 0 broken rows, 12 handled before (of them, rows an earlier run left in the inbox or as dead letters: 6 delivered, 0 filtered out, 1 dead-lettered now); done"},
		{runner.CSVProgress{File: "a.csv", Rows: 40, Queued: 40, Delivered: 30}, "; unfinished; importing the file again resumes after the rows that have an outcome\n"},
		{runner.CSVProgress{File: "a.csv", Rows: 40, Queued: 40, Delivered: 30, Retrying: 10}, "; unfinished; importing the file again resumes after the rows that have an outcome or wait in the inbox; 10 rows wait there, which the next run sends first\n"},
		{runner.CSVProgress{File: "a.csv", Rows: 40, Queued: 40, Delivered: 38, Retrying: 2, ReadDone: true, Finished: true}, "; read; 2 rows wait in the inbox for a retry, which the next run sends first\n"},
		{runner.CSVProgress{File: "a.csv", Rows: 40, Queued: 40, Delivered: 39, Retrying: 1, ReadDone: true, Finished: true}, "; read; 1 row waits in the inbox for a retry, which the next run sends first\n"},
		{runner.CSVProgress{File: "a.csv", Rows: 40, Queued: 40, Delivered: 40, ReadDone: true, Finished: true}, "40 rows read, 40 sent, 40 delivered, 0 filtered out, 0 dead-lettered, 0 broken rows, 0 handled before; done\n"},
		{runner.CSVProgress{File: "a.csv", Rows: 40, Queued: 40, Delivered: 38, Filtered: 2, ReadDone: true, Finished: true}, "40 rows read, 40 sent, 38 delivered, 2 filtered out, 0 dead-lettered, 0 broken rows, 0 handled before; done\n"},
		// One is a row, not rows.
		{runner.CSVProgress{File: "a.csv", Rows: 3, Queued: 2, Delivered: 2, Broken: 1, ReadDone: true, Finished: true}, "3 rows read, 2 sent, 2 delivered, 0 filtered out, 0 dead-lettered, 1 broken row, 0 handled before; done\n"},
		{runner.CSVProgress{File: "a.csv", Rows: 1, Broken: 1, ReadDone: true, Finished: true}, "1 row read, 0 sent, 0 delivered, 0 filtered out, 0 dead-lettered, 1 broken row, 0 handled before; done\n"},
		// The log names a second's worth of stray-quote rows: the count says how many.
		{runner.CSVProgress{File: "a.csv", Rows: 5, Queued: 5, Delivered: 5, RunsOver: 3, ReadDone: true, Finished: true}, "; done; 3 rows over lines that look like rows (a stray quote?), which engine dry-run --csv names\n"},
	}
	for _, tt := range tests {
		var b strings.Builder
		printCSVSummary(&b, []runner.CSVProgress{tt.p})
		if !strings.Contains(b.String(), tt.want) {
			t.Errorf("%+v: %q, want it to contain %q", tt.p, b.String(), tt.want)
		}
	}
}

// The banner lists each route, a secret in its path masked, and marks
// those that take events from anyone.
func TestRunBannerMarksOpenRoutesAndMasksPaths(t *testing.T) {
	masker := &secrets.Masker{}
	masker.Add("s3cr3t")
	http := &spec.SourceType{Kind: spec.HTTPSource}
	pipelines := []*engine.Pipeline{
		{Name: "open", Source: engine.Source{Type: http, Method: "POST", Paths: []string{"/hooks/s3cr3t/in"}}},
		{Name: "closed", Source: engine.Source{Type: http, Method: "POST", Paths: []string{"/hooks/closed"}, Auth: &engine.InboundAuth{Bearer: "t"}}},
	}
	var out strings.Builder
	runBanner{addr: "127.0.0.1:8080", admin: "127.0.0.1:8079", dataDir: "data", pipelines: pipelines, masker: masker}.print(&out)
	for _, want := range []string{"POST /hooks/****/in   (no auth: anyone who reaches the listener can send)\n", "POST /hooks/closed\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, out.String())
		}
	}
}

// Past 20 pipelines the banner names the first 20, those open to anyone
// first, and how many more there are: 300 pipelines made 300 lines.
func TestRunBannerListsAtMost20Pipelines(t *testing.T) {
	http := &spec.SourceType{Kind: spec.HTTPSource}
	var pipelines []*engine.Pipeline
	for i := range 30 {
		p := &engine.Pipeline{Name: fmt.Sprintf("p%02d", i), Source: engine.Source{Type: http, Method: "POST", Paths: []string{fmt.Sprintf("/hooks/%02d", i)}, Auth: &engine.InboundAuth{Bearer: "t"}}}
		if i == 25 {
			p.Source.Auth = nil
		}
		pipelines = append(pipelines, p)
	}
	var out strings.Builder
	runBanner{addr: "127.0.0.1:8080", admin: "127.0.0.1:8079", dataDir: "data", pipelines: pipelines, masker: &secrets.Masker{}}.print(&out)
	lines := strings.Split(out.String(), "\n")
	if !strings.Contains(lines[1], "p25") || !strings.Contains(lines[1], "(no auth") {
		t.Errorf("the open route is not first:\n%s", out.String())
	}
	if strings.Count(out.String(), "POST /hooks/") != 20 || !strings.Contains(out.String(), "  ... and 10 more pipelines (GET http://127.0.0.1:8079/status lists every route)\n") ||
		!strings.Contains(out.String(), "p18 ") || strings.Contains(out.String(), "p19 ") {
		t.Errorf("want p25 and p00-p18, then the count of the rest:\n%s", out.String())
	}
	out.Reset()
	runBanner{addr: "127.0.0.1:8080", dataDir: "data", pipelines: pipelines, masker: &secrets.Masker{}}.print(&out)
	if !strings.Contains(out.String(), "  ... and 10 more pipelines (with an --admin-addr, GET /status there lists every route)\n") {
		t.Errorf("with no admin listener, want it named as what lists every route:\n%s", out.String())
	}
	out.Reset()
	runBanner{addr: "127.0.0.1:8080", admin: "127.0.0.1:8079", dataDir: "data", pipelines: pipelines[:20], masker: &secrets.Masker{}}.print(&out)
	if strings.Count(out.String(), "POST /hooks/") != 20 || strings.Contains(out.String(), "more pipelines") {
		t.Errorf("20 pipelines are all listed:\n%s", out.String())
	}
}

// The sandbox banner offers its curl line only when a pipeline serves the
// route it posts to: a folder without the offers pipeline got a command
// that answered 404. Its header is the route's: the sandbox's token as it
// is, another token (a QA run's curl got 401 with the sandbox's) by its
// variable, never printed.
func TestRunBannerOffersCurlOnlyForAServedRoute(t *testing.T) {
	http := &spec.SourceType{Kind: spec.HTTPSource}
	const line = "curl -s http://127.0.0.1:8080/hooks/sessionm/offers"
	for _, tt := range []struct {
		name string
		path string
		auth *engine.InboundAuth
		want string // the line's header, "-" for no line
	}{
		{"another route", "/hooks/other", &engine.InboundAuth{Bearer: "sandbox-sessionm-webhook-token"}, "-"},
		{"sandbox token", "/hooks/sessionm/offers", &engine.InboundAuth{Bearer: "sandbox-sessionm-webhook-token"}, line + " -H 'Authorization: Bearer sandbox-sessionm-webhook-token' --data"},
		{"own token", "/hooks/sessionm/offers", &engine.InboundAuth{Bearer: "real-Token-999"}, "with TOKEN set to the token the route's source.auth reads:\n  " + line + ` -H "Authorization: Bearer $TOKEN" --data`},
		{"another sandbox token", "/hooks/sessionm/offers", &engine.InboundAuth{Bearer: "sandbox-wallet-token"}, line + " -H 'Authorization: Bearer sandbox-wallet-token' --data"},
		{"no auth", "/hooks/sessionm/offers", nil, line + " --data"},
		{"basic", "/hooks/sessionm/offers", &engine.InboundAuth{Basic: &engine.BasicAuth{Username: "u", Password: "p"}}, "-"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			runBanner{addr: "127.0.0.1:8080", dataDir: "data", sandboxBase: "http://127.0.0.1:9", pipelines: []*engine.Pipeline{
				{Name: "p", Source: engine.Source{Type: http, Method: "POST", Paths: []string{tt.path}, Auth: tt.auth}},
			}, masker: &secrets.Masker{}}.print(&out)
			got := out.String()
			switch {
			case tt.want == "-" && strings.Contains(got, "curl"):
				t.Errorf("a curl line, want none:\n%s", got)
			case tt.want != "-" && !strings.Contains(got, tt.want):
				t.Errorf("banner lacks %q:\n%s", tt.want, got)
			case strings.Contains(got, "real-Token-999"):
				t.Errorf("the banner prints the route's own token:\n%s", got)
			}
		})
	}
}

// The banner says which queued events will be delivered now and which
// wait for a pipeline no file defines (a renamed file's).
func TestRunBannerTellsStrandedEventsApart(t *testing.T) {
	left := map[string]int{"tags": 1, "old-name": 2} // in the inbox at the start
	var out strings.Builder
	runBanner{addr: "127.0.0.1:8080", dataDir: "data", pipelines: []*engine.Pipeline{{Name: "tags", Source: engine.Source{Type: &spec.SourceType{Kind: spec.CSVSource}}}}, left: left}.print(&out)
	for _, want := range []string{"delivering events left by the last run: tags 1\n", "for pipelines no file defines now (a removed or renamed file): old-name 2;"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, out.String())
		}
	}
}

// A listener on the unspecified address is reached, and named in the
// banners and settings, through IPv4 loopback; any other address as it is.
func TestDialAddr(t *testing.T) {
	for _, tt := range []struct{ addr, want string }{
		{"[::]:8081", "127.0.0.1:8081"},
		{"0.0.0.0:8081", "127.0.0.1:8081"},
		{":8081", "127.0.0.1:8081"},
		{"127.0.0.1:8081", "127.0.0.1:8081"},
		{"[::1]:8081", "[::1]:8081"},
		{"192.0.2.1:8081", "192.0.2.1:8081"},
		{"localhost:8081", "localhost:8081"},
	} {
		if got := dialAddr(tt.addr); got != tt.want {
			t.Errorf("dialAddr(%q) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

// On a terminal, a file dropped into an inbox folder gets the status line
// --csv files get, ended by a line break once its rows are settled; an
// import of a file that nothing was read of yet shows nothing.
func TestFolderImportProgress(t *testing.T) {
	every := csvProgressEvery
	csvProgressEvery = time.Millisecond
	t.Cleanup(func() { csvProgressEvery = every })
	busy := runner.CSVProgress{File: "inbox/segments/drop.csv", Rows: 100, Queued: 100, Delivered: 40, Started: time.Now().Add(-time.Second)}
	settled := busy
	settled.Delivered, settled.ReadDone, settled.Finished = 100, true, true
	snapshots := [][]runner.CSVProgress{
		{{File: "inbox/segments/drop.csv", Started: time.Now()}}, // hashing: nothing read yet
		{busy},
		{settled},
	}
	var calls atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	out := newSyncBuffer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		showFolderProgress(ctx, func() []runner.CSVProgress {
			n := int(calls.Add(1)) - 1
			if n >= len(snapshots)+3 {
				cancel()
			}
			return snapshots[min(n, len(snapshots)-1)]
		}, out)
	}()
	<-done
	want := "\rdrop.csv: 40 rows done, 0 filtered out, 0 failed, 40 rows/s, ETA ?   \n"
	if got := out.String(); !strings.HasPrefix(got, "\rdrop.csv: 40 rows done") || !strings.HasSuffix(got, "   \n") || strings.Count(got, "\n") != 1 {
		t.Errorf("status line %q, want one like %q", got, want)
	}
}

// The README's Layout names every folder that holds a Go package (by its
// last element: connectors/braze is "braze" in the connectors line), so
// a new package does not go unlisted.
func TestReadmeLayoutNamesEveryPackage(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	// The folder tree is the section's first code block; the text after
	// it names packages in passing.
	_, layout, _ := strings.Cut(string(readme), "\n## Layout\n")
	_, layout, _ = strings.Cut(layout, "```\n")
	layout, _, _ = strings.Cut(layout, "```")
	if layout == "" {
		t.Fatal("no folder tree in the README's ## Layout section")
	}
	dirs := map[string]bool{}
	err = filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			dirs[filepath.Dir(path)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 20 {
		t.Fatalf("found %d package folders; the walk did not start at the repository's root", len(dirs))
	}
	for dir := range dirs {
		name := filepath.Base(dir)
		if !regexp.MustCompile(`\b` + regexp.QuoteMeta(name) + `\b`).MatchString(layout) {
			t.Errorf("the README's Layout does not name %s/", dir)
		}
	}
}

// The README's YAML examples (a connections file, a pipeline) build with
// the sandbox's settings: a user who copies them gets a working start.
func TestReadmeYAMLExamplesValidate(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rest := string(readme)
	n := 0
	for {
		_, after, found := strings.Cut(rest, "```yaml\n")
		if !found {
			break
		}
		block, tail, _ := strings.Cut(after, "```")
		rest = tail
		n++
		name := fmt.Sprintf("example-%d.yaml", n)
		if strings.Contains(block, "\nconnections:") {
			name = "connections.yaml"
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if n < 2 {
		t.Fatalf("%d yaml blocks in the README; want its connections file and its pipeline", n)
	}
	cf := configFlags{envFiles: listFlag{"examples/sandbox.env"}}
	loader, _, err := cf.loader()
	if err != nil {
		t.Fatal(err)
	}
	proj := loader.Load([]string{dir})
	if proj.Diagnostics.HasErrors() || len(proj.Pipelines) == 0 {
		t.Fatalf("the README's examples do not build (%d pipelines): %v", len(proj.Pipelines), proj.Diagnostics.Items())
	}
}

// The status line fits the terminal: a long file name is shortened in its
// middle, then the line is cut, and the rest of the line is cleared. A
// line wider than the terminal left a copy at each redraw (a QA run).
func TestCSVProgressLineFitsTheTerminal(t *testing.T) {
	rest := ": 2890 of ~45000 rows done, 0 filtered out, 0 failed, 1200 rows/s, ETA 35s"
	short := ": 2890/~45000 done, 0 filtered, 0 failed, 1200/s, ETA 35s"
	fewer := ": 2890/~45000 done, 1200/s, ETA 35s"
	long := "braze-segment-export-loyalty-members-gold-tier-2026-12-01T0700Z.csv"
	for _, tt := range []struct {
		name  string
		width int
		want  string
	}{
		{"a.csv", 80, "a.csv" + rest},
		{long, 100, "braze-segmen…-01T0700Z.csv" + rest},
		{long, 79, "braze-segm…1T0700Z.csv" + short},
		{long, 60, "braze-segmen…01T0700Z.csv" + fewer},
		{long, 40, "…00Z.csv: 2890/~45000 done, 1200/s, ETA "},
		{"a.csv", 20, "a.csv: 2890/~45000 d"},
		// Two columns a character: the name takes 30 columns, the rest 74.
		{"ロイヤルティ会員ゴールド層.csv", 104, "ロイヤルティ会員ゴールド層.csv" + rest},
		// 15 columns for the name: 7 before the "…" hold 3 characters.
		{"ロイヤルティ会員ゴールド層.csv", 90, "ロイヤ…ド層.csv" + rest},
		{"ロイヤルティ会員ゴールド層.csv", 60, "ロイヤルティ…ールド層.csv" + fewer},
		// A combining accent takes no column of its own.
		{"cafe\u0301-clientes.csv", 95, "cafe\u0301-clientes.csv" + rest},
	} {
		got := fitWidth(tt.name, tt.width, rest, short, fewer)
		if got != tt.want || columns(got) > tt.width {
			t.Errorf("%s in %d: %q (%d columns), want %q", tt.name, tt.width, got, columns(got), tt.want)
		}
	}
	for s, want := range map[string]int{"abc": 3, "会員": 4, "ｶﾀｶﾅ": 4, "Ａ": 2, "e\u0301": 1, "": 0, "❤\ufe0f": 2, "a\u200db": 2} {
		if got := columns(s); got != want {
			t.Errorf("columns(%q) = %d, want %d", s, got, want)
		}
	}
	// A cut tail starts with a character, not the accent of the one cut off.
	if got := tailColumns("aaaae\u0301"+"1234567", 7); got != "1234567" {
		t.Errorf("tailColumns: %q", got)
	}
	if got := tailColumns("xe\u0301"+"123456", 7); got != "e\u0301123456" {
		t.Errorf("tailColumns: %q", got)
	}
	var b strings.Builder
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	showProgress(&b, []runner.CSVProgress{{File: "dir/" + long, Started: now.Add(-time.Second)}}, now, nil, 60)
	if got := b.String(); !strings.HasPrefix(got, "\r") || !strings.HasSuffix(got, "\x1b[K") || columns(got) > 1+59+3 {
		t.Errorf("status line %q in 60 columns", got)
	}
	// Rows waiting for a retry, in 80 columns: the review's line showed
	// 7 letters of the name and no ETA.
	b.Reset()
	p := runner.CSVProgress{File: "dir/segment-export.csv", Started: now.Add(-4 * time.Second), Rows: 4930, Queued: 4930, Delivered: 4868, Failed: 3, Retrying: 59, Bytes: 4930 * 40, Size: 6000 * 40}
	showProgress(&b, []runner.CSVProgress{p}, now, nil, 80)
	if got := b.String(); !strings.Contains(got, "segment-export.csv: ") || !strings.Contains(got, "59 retrying, ETA ") || !strings.Contains(got, "3 failed") || columns(got) > 1+79+3 {
		t.Errorf("status line %q in 80 columns with rows waiting for a retry: want the whole name, the failures, the retries and the ETA", got)
	}
}

// On a terminal a log line that comes while the CSV status line shows
// clears it first, rather than being written on after it.
func TestStatusLinesClearsTheStatusForALogLine(t *testing.T) {
	var out strings.Builder
	s := &statusLines{w: &out}
	for _, w := range []string{"\rrows 1   ", "level=WARN msg=x\n", "\rrows 2   ", "\rrows 3   ", "\n", "level=INFO msg=y\n"} {
		if _, err := io.WriteString(s, w); err != nil {
			t.Fatal(err)
		}
	}
	want := "\rrows 1   \r\x1b[Klevel=WARN msg=x\n\rrows 2   \rrows 3   \nlevel=INFO msg=y\n"
	if out.String() != want {
		t.Fatalf("wrote %q; want %q", out.String(), want)
	}
}

// A lookup SessionM answers "not found" is the answer of a respond
// pipeline only (404): a pipeline that sends a request has nothing to
// send without it, so the event fails.
func TestDryRunLookupNotFoundFailsAnEventWithoutRespond(t *testing.T) {
	args := append(slices.Clone(dryRun), "pipelines/offer-issued-to-braze-campaign.yaml", "--event", "examples/events/sessionm-offer-issued.json", "--fixtures", "cmd/engine/testdata/user-not-found")
	stdout, _, code := runEngine(args...)
	if code != exitProblem || !strings.Contains(stdout, "error     step wallet: sessionm answered status error: user_not_found") || strings.Contains(stdout, "response  404") {
		t.Errorf("code %d, output:\n%s", code, stdout)
	}
}

// An open of the data folder that takes a while (another process holds
// it; the first open after an older build reads it through) is said in
// the log: it was silent, and not listening, for up to 10 s (a QA run).
func TestSlowOpenOfTheDataFolderIsLogged(t *testing.T) {
	data := t.TempDir()
	held, err := inbox.Open(data, inbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	_, stderr, code := runEngine("run", "--env-file", "examples/sandbox.env", "--addr", "127.0.0.1:0", "--admin-addr", "", "--data", data, "pipelines/")
	if code != exitProblem || !strings.Contains(stderr, "still opening the data folder") || !strings.Contains(stderr, "is in use") {
		t.Errorf("code %d, stderr:\n%s\nwant 1, the slow open logged, then the folder in use", code, stderr)
	}
}

// A dry run of a CSV file names a column the pipeline reads in another
// letter case, above the rows, in text and JSON.
func TestDryRunCSVWarnsOfANearMissColumn(t *testing.T) {
	file := filepath.Join(t.TempDir(), "case.csv")
	if err := os.WriteFile(file, []byte("user_id,Tag,TTL\nload-000001,vip,600\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append(slices.Clone(dryRun), "pipelines/segment-csv-to-sessionm-tags.yaml", "--csv", file)
	stdout, _, code := runEngine(args...)
	if code != exitOK || !strings.Contains(stdout, "warning   "+file+`:1: the header row's column "Tag" may be meant for tag`) || !strings.Contains(stdout, `column "TTL" may be meant for ttl`) {
		t.Errorf("exit %d:\n%s", code, stdout)
	}
	stdout, _, _ = runEngine(append(args, "--format", "json")...)
	var rep struct{ Warnings []string }
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || len(rep.Warnings) != 2 {
		t.Errorf("JSON warnings %q, %v:\n%s", rep.Warnings, err, stdout)
	}
}
