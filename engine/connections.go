package engine

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/loyalty-connector/engine/engine/diag"
	"github.com/loyalty-connector/engine/engine/secrets"
	"github.com/loyalty-connector/engine/engine/spec"
	"github.com/loyalty-connector/engine/engine/yamlpos"
)

// connectionSet is what a connections file gave.
type connectionSet struct {
	file   string
	exists bool
	// unreadable: the file is not valid YAML, so which connections it
	// defines is not known.
	unreadable bool
	conns      map[string]*spec.Connection
	broken     map[string]bool // defined, but with problems reported in the file
	// raw holds each connection's settings as written (references not
	// resolved), aliases and merges expanded, for pipeline versions.
	raw map[string][]byte
	// errors are the file's errors; problems, those of each broken
	// connection, which a pipeline that uses it is rejected for.
	errors   []diag.Diagnostic
	problems map[string][]diag.Diagnostic
	// resolved fingerprints what each connection's references resolved to
	// (settingsFingerprint), for the versions' hidden part.
	resolved map[string]string
	// limitAt is where each built connection's rate_limit is written, or
	// its name when it has none: where a clash with another folder's
	// connection to the same account is reported (checkSharedAccounts).
	limitAt map[string]diag.Diagnostic
}

// loadConnections reads a connections file. A missing file is not a
// problem until a pipeline names a connection.
func (l *Loader) loadConnections(file string, proj *Project) *connectionSet {
	set := &connectionSet{file: file, conns: map[string]*spec.Connection{}, broken: map[string]bool{}, raw: map[string][]byte{}, resolved: map[string]string{}, limitAt: map[string]diag.Diagnostic{}}
	if _, err := os.Stat(file); err != nil {
		return set
	}
	set.exists = true
	if !slices.Contains(proj.Files, file) { // one --connections file serves several folders
		proj.Files = append(proj.Files, file)
		proj.ConnectionsFiles = append(proj.ConnectionsFiles, file)
	}
	var local diag.List
	defer func() { proj.Diagnostics.Append(local) }()
	doc := l.readDoc(file, &local)
	if doc == nil {
		set.unreadable = true
		set.errors = local.Items()
		return set
	}
	connsNode, ok := doc.Lookup(yamlpos.Path{"connections"})
	written := map[string]map[string]string{} // each connection's values before references resolve
	if ok && connsNode.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(connsNode.Content); i += 2 {
			set.raw[connsNode.Content[i].Value] = decodedYAML(connsNode.Content[i+1])
			written[connsNode.Content[i].Value] = flatYAML(connsNode.Content[i+1])
			set.broken[connsNode.Content[i].Value] = true // until it builds
		}
	} else {
		connsNode = nil
	}
	fc := &fileContext{loader: l, doc: doc, diags: &local}
	fc.checkDuplicateKeys(doc.Root, nil)
	l.standIn(connsNode)
	fc.resolveRefs(doc.Root, nil)
	if connsNode != nil {
		// What each connection's references resolved to, merged ones
		// included: by their paths alone, a value a connection merged
		// (<<: *other) from another's counted as the other's only.
		for i := 0; i+1 < len(connsNode.Content); i += 2 {
			name := connsNode.Content[i].Value
			now := flatYAML(connsNode.Content[i+1])
			var refs []resolvedRef
			for _, key := range slices.Sorted(maps.Keys(now)) {
				if secrets.HasRef(written[name][key]) {
					refs = append(refs, resolvedRef{yamlpos.Path{key}, now[key], written[name][key]})
				}
			}
			set.resolved[name] = settingsFingerprint(refs)
		}
	}
	if fc.validateSchema(l.schemas.connections, l.schemas.rawConnections) {
		fc.strictDecode(&ConnectionsConfig{})
	}
	var cfg ConnectionsConfig
	fc.decode(&cfg)
	broken := set.broken
	for _, name := range slices.Sorted(maps.Keys(cfg.Connections)) {
		settings := cfg.Connections[name]
		path := yamlpos.Path{"connections", name}
		t, ok := l.Catalog.Connections[settings["type"]]
		if !ok {
			continue // reported by the schema
		}
		conn := &spec.Connection{Name: name, File: file, Type: t, Fields: map[string]string{}}
		for _, f := range t.Fields {
			conn.Fields[f.Name] = settings[f.Name]
			if v := settings[f.Name]; f.Check != nil && v != "" && !fc.hasProblem(path.Child(f.Name)) {
				if err := f.Check(v); err != nil {
					fc.errorAt(path.Child(f.Name), "%v", err)
				}
			}
			if f.Secret {
				l.Resolver.Masker().Add(settings[f.Name])
				_, given := settings[f.Name]
				switch fp := path.Child(f.Name); {
				case settings[f.Name] != "" && !fc.referenced[fp.String()]:
					fc.errorAt(fp, "%s is a secret: write ${secret:NAME} (a file under --secrets-dir, or the environment) or ${env:NAME}, not the value itself", f.Name)
				case given && strings.TrimSpace(settings[f.Name]) == "" && !fc.hasProblem(fp):
					// Sent empty, the credential would be refused by the
					// peer on every request, or let through by a lax one.
					fc.errorAt(fp, "%s is empty (an empty variable or secret file?); every request would carry an empty credential", f.Name)
				}
			}
		}
		plainOK, plainErr := parseAllowPlainHTTP(settings[allowPlainHTTP])
		if optIn := path.Child(allowPlainHTTP); plainErr != nil && !fc.hasProblem(optIn) {
			fc.errorAt(optIn, "%v", plainErr)
		}
		// standIn wrote the emulator's URL already, but not where the type
		// or base_url comes from another connection (<<: *other): here it
		// is by the type as merged.
		standIn, hasStandIn := l.StandIns[t.Name]
		if fc.unresolved[path.Child("base_url").String()] && !hasStandIn {
			continue
		}
		baseURL, given := settings["base_url"]
		if hasStandIn {
			baseURL = standIn
		} else if !given {
			continue // the schema says it is missing
		}
		u, err := parseBaseURL(baseURL)
		if err != nil {
			fc.errorAt(path.Child("base_url"), "%v", err)
			continue
		}
		if l.StandIns != nil && !hasStandIn && !isLoopbackHost(u.Hostname()) {
			fc.errorAt(path.Child("base_url"), "--sandbox has no emulator for connections of type %s, and this one goes to %s, off this machine: point base_url at a server here (localhost, 127.0.0.1), or run without --sandbox", t.Name, u.Host)
			continue
		}
		if t.HTTPSOnly {
			if err := checkPlainHTTP(t, u, plainOK); err != nil {
				// With a broken opt-in, whether plain HTTP was meant is
				// unknown: its own problem is the one to report.
				if plainErr == nil && !fc.hasProblem(path.Child(allowPlainHTTP)) {
					fc.errorAt(path.Child("base_url"), "%v", err)
				}
				continue
			}
		}
		conn.BaseURL = u
		conn.Timeout = DefaultTimeout
		if s := settings["timeout"]; s != "" && !fc.hasProblem(path.Child("timeout")) {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				fc.errorAt(path.Child("timeout"), "%q is not a positive duration; write it like 10s", s)
			} else {
				conn.Timeout = d
			}
		}
		if s := settings["rate_limit"]; s != "" && !fc.hasProblem(path.Child("rate_limit")) {
			limit, err := parseRateLimit(s)
			if err != nil {
				fc.errorAt(path.Child("rate_limit"), "%v", err)
			} else {
				conn.RateLimit = &limit
			}
		}
		auth, err := conn.Auth()
		if err != nil {
			fc.errorAt(path, "%v", err)
			continue
		}
		l.Resolver.Masker().AddBuilt(auth.Credential)
		set.conns[name] = conn
		at, found := fc.doc.Lookup(path.Child("rate_limit"))
		if !found {
			at = fc.doc.KeyNode(path)
		}
		set.limitAt[name] = diag.Diagnostic{File: file, Line: at.Line, Column: at.Column, Path: path.String()}
		delete(broken, name)
	}
	// A connection with any problem in it is broken, not built without
	// the setting in error: the checks above report a rate_limit, timeout
	// or allow_plain_http that does not parse and go on with its default,
	// and the schema reports a misspelled key that the decoder leaves
	// out. Built, it would run without that setting, and a reload would
	// swap it in for the running connection, dropping its rate limit.
	for _, d := range local.Items() {
		if d.Severity == diag.Error {
			set.errors = append(set.errors, d)
		}
	}
	set.problems = problemsByConnection(connsNode, set.errors)
	for name := range set.problems {
		delete(set.conns, name)
		broken[name] = true
	}
	proj.Connections = set.conns
	return set
}

// problemsOf gives the problems that keep connection name from being
// used: its own, or all of the file's when the file is not valid YAML.
func (s *connectionSet) problemsOf(name string) []diag.Diagnostic {
	if s.unreadable {
		return s.errors
	}
	return s.problems[name]
}

// problemsByConnection sorts a connections file's errors by the
// connection they are in (conns is the connections: mapping, or nil): by
// their path, or, for one placed by its line only, by the lines the
// connection spans. Errors outside every connection are left out.
func problemsByConnection(conns *yaml.Node, errs []diag.Diagnostic) map[string][]diag.Diagnostic {
	out := map[string][]diag.Diagnostic{}
	if conns == nil {
		return out
	}
	for _, d := range errs {
		for i := 0; i+1 < len(conns.Content); i += 2 {
			key, value := conns.Content[i], conns.Content[i+1]
			prefix := yamlpos.Path{"connections", key.Value}.String()
			under := d.Path == prefix || strings.HasPrefix(d.Path, prefix+".") || strings.HasPrefix(d.Path, prefix+"[")
			spans := d.Path == "" && d.Line >= key.Line && d.Line <= lastLine(value)
			// A name given twice has two entries; list its problem once.
			if n := len(out[key.Value]); (under || spans) && (n == 0 || out[key.Value][n-1] != d) {
				out[key.Value] = append(out[key.Value], d)
			}
		}
	}
	return out
}

// lastLine is the last line n or anything in it starts on.
func lastLine(n *yaml.Node) int {
	last := n.Line
	for _, c := range n.Content {
		last = max(last, lastLine(c))
	}
	return last
}

// standIn writes, under --sandbox, the emulator's base URL in place of the
// base_url of each connection of a type it stands in for, before the
// references are resolved: the file's is not used, and a copied staging
// file whose variable was unset was refused for it (a QA run).
func (l *Loader) standIn(connsNode *yaml.Node) {
	if l.StandIns == nil || connsNode == nil {
		return
	}
	for i := 0; i+1 < len(connsNode.Content); i += 2 {
		conn := yamlpos.Resolve(connsNode.Content[i+1])
		if conn.Kind != yaml.MappingNode {
			continue
		}
		var typ string
		for j := 0; j+1 < len(conn.Content); j += 2 {
			if conn.Content[j].Value == "type" {
				typ = conn.Content[j+1].Value
			}
		}
		url, ok := l.StandIns[typ]
		if !ok {
			continue
		}
		for j := 0; j+1 < len(conn.Content); j += 2 {
			if conn.Content[j].Value == "base_url" && conn.Content[j+1].Kind == yaml.ScalarNode {
				conn.Content[j+1].Value, conn.Content[j+1].Tag = url, "!!str"
			}
		}
	}
}

// parseBaseURL reads a connection's base_url. Its errors never quote the
// user info, query or fragment: they may hold credentials, and base_url
// usually comes from ${env:...}, whose values are not masked.
func parseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		if strings.ContainsAny(s, "@?#") {
			return nil, errors.New("not a base URL (not quoted here: it may hold credentials); write it like https://rest.iad-01.braze.com, with no credentials or query")
		}
		return nil, fmt.Errorf("%q is not a base URL; write it like https://rest.iad-01.braze.com", s)
	}
	var extra []string
	if u.User != nil {
		extra = append(extra, "credentials")
	}
	if u.RawQuery != "" {
		extra = append(extra, "a query")
	}
	if u.Fragment != "" {
		extra = append(extra, "a fragment")
	}
	if len(extra) > 0 {
		shown := &url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
		hint := "remove what follows the path"
		if u.User != nil {
			hint = "give the credentials in the connection's credential settings, as ${secret:NAME}"
		}
		return nil, fmt.Errorf("%q with %s (left out here) is not a base URL: it holds a scheme, host and optional path, no credentials, query or fragment; %s", shown, listed(extra), hint)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// parseAllowPlainHTTP reads allow_plain_http: true or false, written
// as a YAML boolean or, from ${env:...}, as text; unset is false.
func parseAllowPlainHTTP(s string) (bool, error) {
	switch v := strings.TrimSpace(s); {
	case v == "" || strings.EqualFold(v, "false"):
		return false, nil
	case strings.EqualFold(v, "true"):
		return true, nil
	}
	return false, fmt.Errorf("%s is true or false, not %q; set it to true only for an emulator reached over plain HTTP on another host", allowPlainHTTP, s)
}

// checkPlainHTTP refuses an http:// base_url on another host for a type
// whose service is HTTPS only: the credentials of every request would
// cross the network in clear. This machine is exempt, since the sandbox
// and the tests' emulators listen there, and so is a connection that
// opts in. u has passed parseBaseURL, so it holds no credentials to quote.
func checkPlainHTTP(t *spec.ConnectionType, u *url.URL, allowed bool) error {
	if u.Scheme != "http" || allowed || isLoopbackHost(u.Hostname()) {
		return nil
	}
	return fmt.Errorf("%q would send the %s credentials unencrypted, and the service answers only over HTTPS; write https:// (plain http:// is for this machine only: localhost, 127.0.0.1, [::1]), or, for an emulator on another host, set %s: true on this connection", u, t.Name, allowPlainHTTP)
}

// isLoopbackHost says whether host (no port, no brackets) names this
// machine: localhost or a loopback address (127.0.0.0/8, ::1). Not the
// unspecified address (0.0.0.0, ::): it reaches this machine too, but
// the client's HTTP_PROXY is bypassed for loopback and localhost only,
// so a request to it would carry the credentials in clear to the proxy.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// listed joins items as a sentence does: "a, b and c".
func listed(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

// rateLimitHint is said both when the schema's pattern refuses a
// rate_limit and when parseRateLimit does (0/s).
const rateLimitHint = "is not a rate limit; write requests/period, like 10/s, 250000/h or 3000/3s"

// parseRateLimit reads "N/period": 10/s, 250000/h, 3000/3s.
func parseRateLimit(s string) (spec.RateLimit, error) {
	bad := fmt.Errorf("%q "+rateLimitHint, s)
	n, period, ok := strings.Cut(s, "/")
	if !ok {
		return spec.RateLimit{}, bad
	}
	count, err := strconv.Atoi(n)
	if err != nil || count <= 0 {
		return spec.RateLimit{}, bad
	}
	if period != "" && (period[0] < '0' || period[0] > '9') {
		period = "1" + period
	}
	d, err := time.ParseDuration(period)
	if err != nil || d <= 0 {
		return spec.RateLimit{}, bad
	}
	return spec.RateLimit{Requests: count, Window: d}, nil
}

// flatYAML is n's scalar values by their key paths (a.b.0), aliases and
// merges expanded; nil if n does not decode.
func flatYAML(n *yaml.Node) map[string]string {
	var v any
	if n.Decode(&v) != nil {
		return nil
	}
	out := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				walk(prefix+"."+k, c)
			}
		case []any:
			for i, c := range v {
				walk(prefix+"."+strconv.Itoa(i), c)
			}
		default:
			out[prefix] = fmt.Sprint(v)
		}
	}
	walk("", v)
	return out
}

// checkSharedAccounts refuses connections of one name, in several
// folders, that reach one account with different rate_limits: they share
// its limits and pauses (spec.Connection.GovernorKey), which cannot
// follow both. Each is refused, not only the later one: a reload that
// changed one of them kept the others' running versions at a limit the
// edited file then set for all (a QA run). So are the pipelines that use
// them.
func checkSharedAccounts(sets []*connectionSet, proj *Project) {
	type use struct {
		conn *spec.Connection
		set  *connectionSet
	}
	byKey := map[string][]use{}
	var keys []string
	for _, set := range sets {
		for _, name := range slices.Sorted(maps.Keys(set.conns)) {
			c := set.conns[name]
			k := c.GovernorKey()
			if len(byKey[k]) == 0 {
				keys = append(keys, k)
			}
			if !slices.ContainsFunc(byKey[k], func(u use) bool { return u.conn.File == c.File }) {
				byKey[k] = append(byKey[k], use{c, set}) // one file read for several folders counts once
			}
		}
	}
	for _, k := range keys {
		uses := byKey[k]
		if !slices.ContainsFunc(uses, func(u use) bool { return !sameRateLimit(u.conn.RateLimit, uses[0].conn.RateLimit) }) {
			continue
		}
		refusals := make([]diag.Diagnostic, len(uses))
		for i, u := range uses {
			var others []string
			for _, o := range uses {
				if o.conn.File != u.conn.File {
					others = append(others, fmt.Sprintf("%s (%s)", o.conn.File, describeRateLimit(o.conn.RateLimit)))
				}
			}
			d := u.set.limitAt[u.conn.Name]
			d.Severity = diag.Error
			d.Message = fmt.Sprintf("connection %q reaches the same account (the same base_url and credentials) as the %q of %s, so they share its rate limits and pauses, with %s here; give them the same rate_limit, or leave it out of all",
				u.conn.Name, u.conn.Name, strings.Join(others, ", "), describeRateLimit(u.conn.RateLimit))
			proj.Diagnostics.Add(d)
			refusals[i] = d
		}
		for i, u := range uses {
			name := u.conn.Name
			for _, set := range sets {
				if set.file == u.conn.File && set.conns[name] != nil {
					set.problems[name] = append(set.problems[name], refusals[i])
					set.broken[name] = true
					delete(set.conns, name)
				}
			}
		}
	}
}

func sameRateLimit(a, b *spec.RateLimit) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

// describeRateLimit says what limits a connection goes by.
func describeRateLimit(l *spec.RateLimit) string {
	if l == nil {
		return "no rate_limit (the documented limits)"
	}
	// 1h0m0s reads as 1h, 1m0s as 1m.
	window := l.Window.String()
	if strings.HasSuffix(window, "m0s") {
		window = strings.TrimSuffix(window, "0s")
	}
	if strings.HasSuffix(window, "h0m") {
		window = strings.TrimSuffix(window, "0m")
	}
	return fmt.Sprintf("rate_limit %d per %s", l.Requests, window)
}
