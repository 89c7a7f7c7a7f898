package connected

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/loyalty-connector/engine/engine/diag"
	"github.com/loyalty-connector/engine/engine/yamlpos"
	"gopkg.in/yaml.v3"
)

// Live calls the real endpoint. Braze connects only to ports 80 and 443
// and does not follow redirects; Live does the same.
type Live struct {
	client *http.Client
	// AnyPort lifts the port rule (tests against httptest servers).
	AnyPort bool
}

// NewLive returns a fetcher that makes real HTTP calls through transport
// (nil: a clone of http.DefaultTransport).
func NewLive(transport http.RoundTripper) *Live {
	if transport == nil {
		transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	return &Live{client: &http.Client{
		Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// Fetch makes the call.
func (l *Live) Fetch(ctx context.Context, req Request) (Response, error) {
	u, err := url.Parse(req.URL)
	if err != nil {
		return Response{}, err
	}
	if port := u.Port(); port != "" && port != "80" && port != "443" && !l.AnyPort {
		return Response{}, finalError{fmt.Errorf("Braze connects only to ports 80 and 443, not %s", port)}
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, req.URL, bytes.NewReader(req.Body))
	if err != nil {
		return Response{}, err
	}
	hr.Header = req.Header.Clone()
	resp, err := l.client.Do(hr)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Response{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return Response{}, err
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// Sandbox answers calls with the emulators' handler in process, without a
// socket. URLs under the sandbox's own prefixes (/sessionm/core,
// /sessionm/connect, /braze) go to it as they are; on any other host,
// SessionM paths are recognised (/priv/v1/... is Core, /offers/api/... is
// Connect), so a template written for a real SessionM endpoint previews
// against the sandbox unchanged.
type Sandbox struct {
	handler http.Handler
}

// NewSandbox returns a fetcher served by h (sandbox.Sandbox.Handler()).
func NewSandbox(h http.Handler) *Sandbox { return &Sandbox{handler: h} }

// sandboxRoutes maps a path marker to the sandbox prefix it is served under.
var sandboxRoutes = []struct{ marker, prefix string }{
	{"/priv/v1/", "/sessionm/core"},
	{"/offers/api/", "/sessionm/connect"},
}

// Fetch serves the call.
func (s *Sandbox) Fetch(ctx context.Context, req Request) (Response, error) {
	u, err := url.Parse(req.URL)
	if err != nil {
		return Response{}, err
	}
	path := u.EscapedPath()
	if !strings.HasPrefix(path, "/sessionm/") && !strings.HasPrefix(path, "/braze/") {
		mapped := ""
		for _, r := range sandboxRoutes {
			if i := strings.Index(path, r.marker); i >= 0 {
				mapped = r.prefix + path[i:]
				break
			}
		}
		if mapped == "" {
			return Response{}, finalError{fmt.Errorf("the sandbox has no endpoint at %s: it answers SessionM Core (/priv/v1/...), SessionM Connect (/offers/api/...) and its own /sessionm/ and /braze/ paths; use --connected-content fixtures DIR for other hosts", req.URL)}
		}
		path = mapped
	}
	target := "http://sandbox" + path
	if u.RawQuery != "" {
		target += "?" + u.RawQuery
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, target, bytes.NewReader(req.Body))
	if err != nil {
		return Response{}, err
	}
	hr.Header = req.Header.Clone()
	hr.RemoteAddr = "127.0.0.1:0"
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, hr)
	body := rec.Body.Bytes()
	if len(body) > MaxBody+1 {
		body = body[:MaxBody+1]
	}
	return Response{Status: rec.Code, Header: rec.Header(), Body: body}, nil
}

// Fixtures answers calls from files: DIR/fixtures.yaml lists, in order,
// which method and URL (and optionally which body) get which answer. The
// first entry that matches answers.
type Fixtures struct {
	dir     string
	entries []fixture
}

// FixturesFile is the index file in a fixtures folder.
const FixturesFile = "fixtures.yaml"

type fixture struct {
	Method string `yaml:"method"`
	// URL matches exactly; a * in it stands for any text.
	URL          string            `yaml:"url"`
	BodyContains string            `yaml:"body_contains"`
	Status       int               `yaml:"status"`
	File         string            `yaml:"file"`
	Body         *string           `yaml:"body"`
	Headers      map[string]string `yaml:"headers"`
	Delay        time.Duration     `yaml:"delay"`
}

// LoadFixtures reads DIR/fixtures.yaml and checks that every file it
// names can be read.
func LoadFixtures(dir string) (*Fixtures, error) {
	index := filepath.Join(dir, FixturesFile)
	raw, err := os.ReadFile(index)
	if err != nil {
		return nil, fmt.Errorf("reading the fixtures index: %w (a fixtures folder holds %s listing method, url and file of each answer)", err, FixturesFile)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", index, err)
	}
	if len(doc.Content) == 0 {
		return &Fixtures{dir: dir}, nil
	}
	list := doc.Content[0]
	if list.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s:%d:%d: a list of fixtures is needed (- method: GET, url: ..., file: ...)", index, list.Line, list.Column)
	}
	f := &Fixtures{dir: dir}
	for _, item := range list.Content {
		var fx fixture
		if err := decodeFixture(index, item, &fx); err != nil {
			return nil, err
		}
		fx.Method = strings.ToUpper(cmp.Or(fx.Method, http.MethodGet))
		if fx.URL == "" {
			return nil, fmt.Errorf("%s:%d:%d: the fixture needs a url", index, item.Line, item.Column)
		}
		if fx.File == "" && fx.Body == nil {
			return nil, fmt.Errorf("%s:%d:%d: the fixture needs a file (the answer's body) or a body", index, item.Line, item.Column)
		}
		if fx.File != "" {
			if _, err := os.Stat(filepath.Join(dir, fx.File)); err != nil {
				return nil, fmt.Errorf("%s:%d:%d: %w", index, item.Line, item.Column, err)
			}
		}
		if fx.Status == 0 {
			fx.Status = http.StatusOK
		}
		f.entries = append(f.entries, fx)
	}
	return f, nil
}

// fixtureKeys are the keys a fixture may have.
var fixtureKeys = []string{"method", "url", "body_contains", "status", "file", "body", "headers", "delay"}

// decodeFixture decodes one item of the index key by key, so that an
// unknown key or a value of the wrong type is reported at its own line
// and column (decoding a re-encoded copy of the item, with
// KnownFields, gave lines counted from the item instead of the file).
func decodeFixture(index string, item *yaml.Node, into *fixture) error {
	keys := "the keys are " + strings.Join(fixtureKeys, ", ")
	if item.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d:%d: a fixture is a mapping (%s)", index, item.Line, item.Column, keys)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(item.Content); i += 2 {
		k, v := item.Content[i], item.Content[i+1]
		if !slices.Contains(fixtureKeys, k.Value) {
			return fmt.Errorf("%s:%d:%d: unknown key %q%s (%s)", index, k.Line, k.Column, k.Value, diag.Suggest(k.Value, fixtureKeys), keys)
		}
		if seen[k.Value] {
			return fmt.Errorf("%s:%d:%d: %s is given twice", index, k.Line, k.Column, k.Value)
		}
		seen[k.Value] = true
		pair := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{k, v}}
		if err := pair.Decode(into); err != nil {
			return fmt.Errorf("%s:%d:%d: %s: %s", index, v.Line, v.Column, k.Value, yamlErrorText(err))
		}
	}
	return nil
}

// yamlErrorText is the first message of a decoding error in words, without
// the line yaml.v3 puts before it (the caller gives the position).
func yamlErrorText(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) || len(te.Errors) == 0 {
		return err.Error()
	}
	_, msg := yamlpos.TypeProblem(te.Errors[0])
	return msg
}

// Fetch answers from the first matching fixture.
func (f *Fixtures) Fetch(ctx context.Context, req Request) (Response, error) {
	for _, fx := range f.entries {
		if !fx.matches(req) {
			continue
		}
		if fx.Delay > 0 {
			t := time.NewTimer(fx.Delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return Response{}, ctx.Err()
			case <-t.C:
			}
		}
		var body []byte
		if fx.Body != nil {
			body = []byte(*fx.Body)
		} else {
			b, err := readLimited(filepath.Join(f.dir, fx.File))
			if err != nil {
				return Response{}, finalError{err}
			}
			body = b
		}
		h := http.Header{}
		for k, v := range fx.Headers {
			h.Set(k, v)
		}
		if h.Get("Content-Type") == "" && strings.HasSuffix(fx.File, ".json") {
			h.Set("Content-Type", "application/json")
		}
		return Response{Status: fx.Status, Header: h, Body: body}, nil
	}
	return Response{}, finalError{fmt.Errorf("no fixture answers %s %s; add one to %s", req.Method, req.URL, filepath.Join(f.dir, FixturesFile))}
}

func (fx fixture) matches(req Request) bool {
	if fx.Method != req.Method {
		return false
	}
	return glob(fx.URL, req.URL) && (fx.BodyContains == "" || bytes.Contains(req.Body, []byte(fx.BodyContains)))
}

// glob matches s against a pattern in which * stands for any text, / and
// ? included (a URL's host, path or query).
func glob(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}

func readLimited(path string) ([]byte, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	return io.ReadAll(io.LimitReader(file, MaxBody+1))
}
