package engine

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/connectors"
	"github.com/loyalty-connector/engine/engine/secrets"
	"github.com/loyalty-connector/engine/internal/golden"
)

// Each testdata/bad/NAME.yaml must give exactly the problems in
// NAME.want, one "file:line:col: path: message" per line.
func TestValidateBadPipelines(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	for _, f := range files {
		if filepath.Base(f) == ConnectionsFileName {
			continue
		}
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			l, _ := testLoader(t)
			proj := l.Load([]string{f})
			if len(proj.Pipelines) != 0 {
				t.Errorf("a bad pipeline was built")
			}
			var got strings.Builder
			for _, d := range proj.Diagnostics.Items() {
				got.WriteString(d.String() + "\n")
			}
			if got.Len() == 0 {
				t.Fatal("no problems reported")
			}
			golden.Check(t, strings.TrimSuffix(f, ".yaml")+".want", got.String())
		})
	}
}

func TestValidateGoodPipelines(t *testing.T) {
	for _, dir := range []string{"testdata/good", "../pipelines"} {
		l, _ := testLoader(t)
		proj := l.Load([]string{dir})
		if err := proj.Diagnostics.Err(); err != nil {
			t.Errorf("%s:\n%v", dir, err)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if want := len(files) - 1; len(proj.Pipelines) != want { // all but connections.yaml
			t.Errorf("%s: built %d pipelines, want %d", dir, len(proj.Pipelines), want)
		}
	}
}

// These build, with a warning: an HMAC route whose pipeline reads what is
// not signed (a {placeholder} in its path, or the query, which the dedupe
// id leaves out too), and a header that looks like a credential written
// in the file.
func TestGoodPipelinesWarnings(t *testing.T) {
	for file, want := range map[string]string{
		"testdata/good/raw-call.yaml":          "testdata/good/raw-call.yaml:5:9: warning: source.path: an HMAC signature covers the body, not the path: {account}, {id} are not signed",
		"testdata/good/hmac-query.yaml":        "testdata/good/hmac-query.yaml:7:7: warning: source.auth.hmac: the pipeline reads request.query, which an HMAC signature does not cover",
		"testdata/good/credential-header.yaml": "testdata/good/credential-header.yaml:10:16: warning: target.headers.X-Api-Key: X-Api-Key looks like a credential, written here in the file: write ${secret:NAME}",
	} {
		l, _ := testLoader(t)
		proj := l.Load([]string{file})
		var warnings []string
		for _, d := range proj.Diagnostics.Items() {
			warnings = append(warnings, d.String())
		}
		if len(proj.Pipelines) != 1 || len(warnings) != 1 || !strings.HasPrefix(warnings[0], want) {
			t.Errorf("%s: built %d pipelines; diagnostics %q, want one starting %q", file, len(proj.Pipelines), warnings, want)
		}
	}
}

// Problems in connections.yaml are reported there, once, and a pipeline
// that uses a broken connection, or one of a file that is not valid YAML,
// says so instead of building.
func TestValidateBadConnections(t *testing.T) {
	for _, dir := range []string{"testdata/badconns", "testdata/unreadableconns"} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			l, _ := testLoader(t)
			proj := l.Load([]string{dir})
			var got strings.Builder
			for _, d := range proj.Diagnostics.Items() {
				got.WriteString(d.String() + "\n")
			}
			golden.Check(t, dir+"/want.txt", got.String())
			if len(proj.Pipelines) != 0 {
				t.Errorf("built %d pipelines on a broken connection", len(proj.Pipelines))
			}
		})
	}
}

func TestValidateRouteConflict(t *testing.T) {
	l, _ := testLoader(t)
	proj := l.Load([]string{"testdata/routes"})
	var got []string
	for _, d := range proj.Diagnostics.Items() {
		got = append(got, d.String())
	}
	want := []string{
		`testdata/routes/second.yaml:3:9: source.path: POST /hooks/{id} conflicts with POST /hooks/{user_id} of pipeline "first": both take the same requests; each route belongs to one pipeline`,
		`testdata/routes/third.yaml:4:7: source.path[0]: POST /x/b/{c} conflicts with POST /x/{a}/y of pipeline "first": both would take /x/b/y; make the paths differ`,
		`testdata/routes/third.yaml:6:7: source.path[2]: POST /z conflicts with POST /z of this pipeline: both take the same requests; each route belongs to one pipeline`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Routes conflict across folders, as engine run serves every folder on
// one listener, and with the engine's own routes: validate said ok to
// both, and run refused them (a QA run).
func TestValidateRouteConflictAcrossFolders(t *testing.T) {
	other := t.TempDir()
	conns, err := os.ReadFile("testdata/good/connections.yaml")
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, other, map[string]string{
		ConnectionsFileName: string(conns),
		"again.yaml":        "source: { type: http, path: \"/hooks/{uid}\" }\ntarget: { connection: api, method: POST, path: /x, body: { a: 1 } }\n",
		"metrics.yaml":      "source: { type: http, method: GET, path: /metrics }\ntarget: { connection: api, method: POST, path: /x, body: { a: 1 } }\n",
	})
	l, _ := testLoader(t)
	proj := l.Load([]string{"testdata/routes/first.yaml", other})
	var got []string
	for _, d := range proj.Diagnostics.Items() {
		got = append(got, strings.TrimPrefix(d.String(), other+string(filepath.Separator)))
	}
	want := []string{
		`again.yaml:1:29: source.path: POST /hooks/{uid} conflicts with POST /hooks/{user_id} of pipeline "first": both take the same requests; each route belongs to one pipeline`,
		`metrics.yaml:1:42: source.path: GET /metrics conflicts with GET /metrics, which the engine serves itself (/healthz, /readyz, /metrics): give the pipeline another path`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A route that takes some of another pipeline's requests, net/http
// taking the more specific for them, is warned about with such a request
// and the pipeline that gets it: the other never saw them, with no word
// (a QA run). Routes that take other requests, or conflict, are not.
func TestValidateRouteOverlap(t *testing.T) {
	dir := t.TempDir()
	conns, err := os.ReadFile("testdata/good/connections.yaml")
	if err != nil {
		t.Fatal(err)
	}
	target := "target: { connection: api, method: POST, path: /x, body: { a: 1 } }\n"
	writeFiles(t, dir, map[string]string{
		ConnectionsFileName: string(conns),
		"a-kinds.yaml":      "source: { type: http, path: \"/events/{kind}\" }\n" + target,
		"b-offers.yaml":     "source: { type: http, path: /events/offer }\n" + target,
		"c-other.yaml":      "source: { type: http, path: [\"/other/{kind}\", /events/offer/more] }\n" + target,
		"d-get.yaml":        "source: { type: http, method: GET, path: /events/offer, auth: { bearer: x } }\nrespond: { body: { a: 1 } }\n",
	})
	l, _ := testLoader(t)
	proj := l.Load([]string{dir})
	var got []string
	for _, d := range proj.Diagnostics.Items() {
		if line := strings.TrimPrefix(d.String(), dir+string(filepath.Separator)); strings.Contains(line, "also takes") {
			got = append(got, line)
		}
	}
	want := []string{
		`b-offers.yaml:1:29: warning: source.path: POST /events/offer also takes requests of POST /events/{kind} of pipeline "a-kinds": /events/offer goes to pipeline "b-offers", whose route is the more specific; make the paths differ if that is not meant`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, tt := range []struct{ a, b, example, specific string }{
		{"/x/{id}/tags", "/x/u-1/tags", "/x/u-1/tags", "/x/u-1/tags"},
		{"/x/{a}/{b}", "/x/{c}/y", "/x/x/y", "/x/{c}/y"},
		{"/x/{a}/y", "/x/b/{c}", "", ""}, // neither: a conflict, refused by Claim
		{"/x/{a}", "/y/{b}", "", ""},
		{"/x/{a}", "/x/{a}/z", "", ""},
		{"/x/{rest...}", "/x/y", "", ""}, // left to net/http
	} {
		example, specific, ok := overlap(tt.a, tt.b)
		if example != tt.example || specific != tt.specific || ok != (tt.example != "") {
			t.Errorf("overlap(%s, %s) = %q, %q, %v; want %q, %q", tt.a, tt.b, example, specific, ok, tt.example, tt.specific)
		}
	}
}

// Two CSV pipelines on one inbox folder each imported only the files the
// other had not taken first (a file is imported once, then filed away),
// and a pipeline on another's done/ or failed/ imported that one's files
// again: such a pipeline is refused at its source.inbox, naming the
// other. A folder deeper in another's is fine: a watcher reads only the
// files directly in its folder.
func TestValidateInboxConflict(t *testing.T) {
	l, _ := testLoader(t)
	proj := l.Load([]string{"testdata/inboxes"})
	var got []string
	for _, d := range proj.Diagnostics.Items() {
		got = append(got, d.String())
	}
	want := []string{
		`testdata/inboxes/b.yaml:3:10: source.inbox: testdata/inboxes/drop/segments is also the inbox folder of pipeline "a": a file dropped there is imported once, by whichever pipeline looks first, and then filed away to done/, so the other never sees it; each inbox folder belongs to one pipeline, so give this one a folder of its own`,
		`testdata/inboxes/c.yaml:3:10: source.inbox: testdata/inboxes/drop/segments/done is where pipeline "a" files away the CSV files it imported (its inbox folder is testdata/inboxes/drop/segments), so this pipeline would import each of them again; each inbox folder belongs to one pipeline, so give this one a folder of its own`,
		`testdata/inboxes/f.yaml:3:10: source.inbox: pipeline "e" watches testdata/inboxes/drop/other/failed, where this pipeline files away the CSV files it imported, so that pipeline would import each of them again; each inbox folder belongs to one pipeline, so give this one a folder whose done/ and failed/ no other pipeline watches`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var built []string
	for _, p := range proj.Pipelines {
		built = append(built, p.Name)
	}
	if slices.Sort(built); !slices.Equal(built, []string{"a", "d", "e"}) {
		t.Errorf("built %v, want a, d and e", built)
	}
}

// One folder named through a link, or through a link to a folder above
// it that does not exist yet (a watcher makes it), is still one folder.
func TestValidateInboxConflictThroughALink(t *testing.T) {
	dir := t.TempDir()
	copyTo := func(name, inbox string) {
		src := fmt.Sprintf("source:\n  type: csv\n  inbox: %s\ntarget:\n  connection: api\n  method: POST\n  path: /a\n", inbox)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile("testdata/inboxes/connections.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConnectionsFileName), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "real", "segments"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "real"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	copyTo("a.yaml", "real/segments")
	copyTo("b.yaml", "link/segments")
	copyTo("c.yaml", "real/later")
	copyTo("d.yaml", filepath.Join(dir, "link", "later"))
	l, _ := testLoader(t)
	proj := l.Load([]string{dir})
	var got []string
	for _, d := range proj.Diagnostics.Items() {
		got = append(got, d.String())
	}
	if len(got) != 2 || !strings.HasPrefix(got[0], filepath.Join(dir, "b.yaml")+":3:10: source.inbox: ") || !strings.Contains(got[0], `also the inbox folder of pipeline "a"`) ||
		!strings.HasPrefix(got[1], filepath.Join(dir, "d.yaml")+":3:10: source.inbox: ") || !strings.Contains(got[1], `also the inbox folder of pipeline "c"`) {
		t.Errorf("got\n%s", strings.Join(got, "\n"))
	}
}

// Secrets never appear in a diagnostic, even when a bad value holds one:
// nor do the credentials and query of a base URL, which usually comes
// from ${env:...}, whose values are not masked.
func TestDiagnosticsMaskSecrets(t *testing.T) {
	l, _ := testLoader(t)
	proj := l.Load([]string{"testdata/badconns"})
	for _, d := range proj.Diagnostics.Items() {
		for _, secret := range []string{"test-api-token", "written-in-the-file", "corekey", "SECRETPASS", "QUERYSECRET"} {
			if strings.Contains(d.String(), secret) {
				t.Errorf("secret %q printed in %s", secret, d)
			}
		}
	}
}

// A secret whose value holds Liquid markup is refused without anything
// reading the value as Liquid afterwards: the parser's errors quoted the
// names inside it (`unknown name "Qz7mN4pLw2"`), which the masker, knowing
// only the whole value, let through (a QA run).
func TestASecretHoldingLiquidIsNotParsed(t *testing.T) {
	dir := t.TempDir()
	const secret = "xK9{{Qz7mN4pLw2}}"
	if err := os.WriteFile(filepath.Join(dir, "PARTNER_KEY"), []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	pipelines := t.TempDir()
	conns, err := os.ReadFile("testdata/bad/connections.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"connections.yaml": string(conns),
		"p.yaml": `source:
  type: http
  path: /hooks/p
target:
  connection: braze
  endpoint: users_track
  headers:
    X-Api-Key: ${secret:PARTNER_KEY}
  query:
    key: "${secret:PARTNER_KEY}"
  body:
    attributes:
      - external_id: "{{ event.id }}"
        key: "Key ${secret:PARTNER_KEY}"
`,
	} {
		if err := os.WriteFile(filepath.Join(pipelines, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := testEnv(t)
	masker := &secrets.Masker{}
	l, err := NewLoader(connectors.Catalog(), secrets.NewResolver(func(name string) (string, bool) { v, ok := env[name]; return v, ok }, dir, masker))
	if err != nil {
		t.Fatal(err)
	}
	proj := l.Load([]string{pipelines})
	items := proj.Diagnostics.Items()
	if len(items) != 3 {
		t.Errorf("%d problems, want one for each of the 3 fields:\n%v", len(items), proj.Diagnostics.Err())
	}
	for _, d := range items {
		if !strings.Contains(d.Message, "the value of secret PARTNER_KEY holds {{ or {%") {
			t.Errorf("problem %s; want it to say the secret's value holds Liquid markup", d)
		}
		for _, piece := range []string{"Qz7", "xK9", "pLw2"} {
			if strings.Contains(d.String(), piece) {
				t.Errorf("a piece of the secret is printed: %s", d)
			}
		}
	}
}

// The seed wallet pipeline's cache key keeps users apart whatever their id
// and culture hold: a user id with "/" (an escaped %2F in the path) must
// not share another user's entry.
func TestWalletCacheKeysDoNotCollide(t *testing.T) {
	l, _ := testLoader(t)
	proj := l.Load([]string{"../pipelines"})
	var wallet *Pipeline
	for _, p := range proj.Pipelines {
		if p.Name == "wallet-for-connected-content" {
			wallet = p
		}
	}
	if wallet == nil || wallet.Respond == nil || wallet.Respond.Cache.Key == nil {
		t.Fatal("the seed wallet pipeline has no cache key")
	}
	key := func(user, culture string) string {
		ev := &Event{Request: &RequestInfo{Method: "GET", Params: map[string]string{"user_id": user}, Query: url.Values{"culture": {culture}}, Headers: http.Header{}}}
		k, err := wallet.Respond.Cache.Key.Render(wallet.Bindings(ev, time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	if a, b := key("A/B", "C"), key("A", "B/C"); a == b {
		t.Errorf("user A/B in culture C and user A in culture B/C share the key %q", a)
	}
	if a, b := key("u-1", "es-ES"), key("u-1", "es-ES"); a != b {
		t.Errorf("one user and culture gave two keys, %q and %q", a, b)
	}
}

// Which changed files can change what a load reads: a reloader passes
// over the others.
func TestLoaderReads(t *testing.T) {
	l := &Loader{ConnectionsFile: "/etc/engine/conns.json", Resolver: secrets.NewResolver(nil, "/run/secrets", &secrets.Masker{})}
	for path, want := range map[string]bool{
		"pipelines/tags.yaml":        true,
		"pipelines/connections.yml":  true,
		"pipelines/.tags.yaml.swp":   false,
		"pipelines/.tags.yaml":       false,
		"pipelines/engine.log":       false,
		"/etc/engine/conns.json":     true,
		"/run/secrets/BRAZE_API_KEY": true,
		"/run/secrets/..data":        true,
		"/run/secrets/notes.txt":     false,
	} {
		if got := l.Reads(path); got != want {
			t.Errorf("Reads(%s) = %v, want %v", path, got, want)
		}
	}
}

// Two folders' connections of one name to one account share its limits
// and pauses at run time, so their rate_limits must agree: both are
// refused, and so are the pipelines that use them (refusing only the
// later folder's let a reload of the earlier one change the limit for
// both, a QA run). The same limit, another name or another account is
// fine.
func TestValidateConnectionsToOneAccountAgreeOnRateLimit(t *testing.T) {
	folder := func(name, conn, rateLimit string) string {
		dir := filepath.Join(t.TempDir(), name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		files := map[string]string{
			ConnectionsFileName:      "connections:\n  " + conn + ":\n    type: http\n    base_url: https://api.example.com\n    bearer_token: ${secret:API_TOKEN}\n" + rateLimit,
			"send-" + name + ".yaml": "source: { type: http, path: \"/hooks/" + name + "\" }\ntarget: { connection: " + conn + ", method: POST, path: /x, body: { a: 1 } }\n",
		}
		for file, text := range files {
			if err := os.WriteFile(filepath.Join(dir, file), []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	for _, tt := range []struct {
		name, conn, rateLimit string
		refused               bool
	}{
		{"another limit", "api", "    rate_limit: 5/s\n", true},
		{"the same limit", "api", "    rate_limit: 10/s\n", false},
		{"another name", "partner", "    rate_limit: 5/s\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			first := folder("first", "api", "    rate_limit: 10/s\n")
			second := folder("second", tt.conn, tt.rateLimit)
			l, _ := testLoader(t)
			proj := l.Load([]string{first, second})
			var got []string
			for _, d := range proj.Diagnostics.Items() {
				got = append(got, strings.TrimPrefix(strings.TrimPrefix(d.String(), filepath.Dir(first)+"/"), filepath.Dir(second)+"/"))
			}
			if !tt.refused {
				if len(got) > 0 || len(proj.Pipelines) != 2 {
					t.Fatalf("%d pipelines, problems:\n%s", len(proj.Pipelines), strings.Join(got, "\n"))
				}
				return
			}
			conns := func(dir string) string { return filepath.Join(dir, ConnectionsFileName) }
			want := []string{
				`first/connections.yaml:6:17: connections.api: connection "api" reaches the same account (the same base_url and credentials) as the "api" of ` + conns(second) + ` (rate_limit 5 per 1s), so they share its rate limits and pauses, with rate_limit 10 per 1s here; give them the same rate_limit, or leave it out of all`,
				`first/send-first.yaml:2:23: target.connection: connection "api" cannot be used until the problems reported in ` + conns(first) + ` are fixed`,
				`second/connections.yaml:6:17: connections.api: connection "api" reaches the same account (the same base_url and credentials) as the "api" of ` + conns(first) + ` (rate_limit 10 per 1s), so they share its rate limits and pauses, with rate_limit 5 per 1s here; give them the same rate_limit, or leave it out of all`,
				`second/send-second.yaml:2:23: target.connection: connection "api" cannot be used until the problems reported in ` + conns(second) + ` are fixed`,
			}
			if !slices.Equal(got, want) || len(proj.Pipelines) != 0 {
				t.Errorf("%d pipelines; got\n%s\nwant\n%s", len(proj.Pipelines), strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// A caller's bearer token arrives without the spaces around it (HTTP
// drops them from a header's value), so the configured one is taken
// without them too: from a variable of " tok ", it let no request in.
func TestBearerTokenIsTakenWithoutSpacesAround(t *testing.T) {
	dir := t.TempDir()
	conns, err := os.ReadFile("testdata/bad/connections.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		ConnectionsFileName: string(conns),
		"hook.yaml": `source:
  type: http
  path: /hooks/spaced
  auth:
    bearer: ${env:SPACED_TOKEN}
target:
  connection: api
  method: POST
  path: /events
`,
	}
	writeFiles(t, dir, files)
	p := loadOne(t, filepath.Join(dir, "hook.yaml"))
	if got := p.Source.Auth.Bearer; got != "test-token" {
		t.Errorf("bearer %q, want %q", got, "test-token")
	}
}
