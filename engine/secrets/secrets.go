// Package secrets resolves ${env:NAME} and ${secret:NAME} references in
// configuration strings and masks every secret value wherever the engine
// prints something.
package secrets

import (
	"cmp"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/loyalty-connector/engine/engine/diag"
	"github.com/loyalty-connector/engine/engine/spec"
)

// Mask replaces a secret value in anything the engine prints.
const Mask = "****"

// refRE matches ${env:NAME}, ${env:NAME:-default} and ${secret:NAME}.
// Anything else that starts with "${" (Braze's ${user_id} attribute syntax,
// say) is left alone. "$${" escapes a literal "${".
var refRE = regexp.MustCompile(`\$?\$\{(env|secret):([^}:]*)(:-([^}]*))?\}`)

var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Problem is a reference that could not be resolved, with its byte offset
// in the string it came from.
type Problem struct {
	Offset  int
	Message string
}

// Resolver expands references. It is safe for concurrent use.
type Resolver struct {
	lookupEnv  func(string) (string, bool)
	secretsDir string
	masker     *Masker
	// KnownNames, when set, lists the variable names lookupEnv can find
	// (ChainNames), so that a reference that finds nothing can name the
	// one it may have meant. Names only: values are never suggested.
	KnownNames func() []string
	// Started: engine run has started, and reads the environment and
	// --env-file no more; a reload's problem says what works now.
	Started bool
}

// NewResolver returns a resolver reading env through lookupEnv (os.LookupEnv
// in production, a map in tests) and secret files from secretsDir (may be
// empty). Every secret it resolves is added to masker.
func NewResolver(lookupEnv func(string) (string, bool), secretsDir string, masker *Masker) *Resolver {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	return &Resolver{lookupEnv: lookupEnv, secretsDir: secretsDir, masker: masker}
}

// Files lists the secrets folder and the files in it a ${secret:NAME}
// could read (those named like a variable; a Kubernetes volume's ..data
// links are not), so that a caller can tell a secret was rotated. A
// folder that is not there gives nothing.
func (r *Resolver) Files() []string {
	if r == nil || r.secretsDir == "" {
		return nil
	}
	entries, err := os.ReadDir(r.secretsDir)
	if err != nil {
		return nil
	}
	out := []string{filepath.Clean(r.secretsDir)}
	for _, e := range entries {
		if nameRE.MatchString(e.Name()) {
			out = append(out, filepath.Join(r.secretsDir, e.Name()))
		}
	}
	return out
}

// Reads reports whether a change to path can change a secret: a file of
// the secrets folder named like a variable, or the ..data link through
// which a Kubernetes secret volume swaps them all.
func (r *Resolver) Reads(path string) bool {
	if r == nil || r.secretsDir == "" || filepath.Dir(path) != filepath.Clean(r.secretsDir) {
		return false
	}
	base := filepath.Base(path)
	return nameRE.MatchString(base) || strings.HasPrefix(base, "..")
}

// MaskEnv has the masker hide the values of the ${env:NAME} references in
// s (a default when it is taken), for a setting that carries a credential
// though it is read from the environment, as a secret is masked.
func (r *Resolver) MaskEnv(s string) {
	for _, m := range refRE.FindAllStringSubmatch(s, -1) {
		if strings.HasPrefix(m[0], "$$") || m[1] != "env" {
			continue
		}
		v, ok := r.lookupEnv(m[2])
		if (!ok || v == "") && m[3] != "" {
			v = m[4]
		}
		r.masker.Add(v)
	}
}

// Masker returns the masker that receives resolved secrets.
func (r *Resolver) Masker() *Masker { return r.masker }

// HasRef reports whether s holds a reference to resolve.
func HasRef(s string) bool { return strings.Contains(s, "${env:") || strings.Contains(s, "${secret:") }

// Where says what a string with references becomes, which decides how a
// secret may go into it: pasted into an expression or a template, a value
// with a quote or Liquid's delimiters would be read as code, and the
// parse error that follows would quote it.
type Where int

const (
	InText       Where = iota // a plain setting: the value as it is
	InExpression              // expr source: a secret only as a whole string literal
	InTemplate                // Liquid source: with a secret, plain text only
	InPath                    // a template that is a request path: no {placeholder} in a secret either
	InAnchor                  // a pipeline's YAML anchor or merge (<<): it could land anywhere, so no secret
)

// Expand resolves every reference in s, a plain setting. It returns the
// expanded string, whether a secret went into it, and the references it
// could not resolve.
func (r *Resolver) Expand(s string) (out string, secret bool, problems []Problem) {
	return r.ExpandIn(s, InText)
}

// ExpandIn is Expand for a string that becomes where.
//
// In an expression a secret must be written as a whole double-quoted
// string, "${secret:NAME}", and goes in as a string literal that holds its
// value exactly (quotes escaped). A template that holds a secret must come
// out with no Liquid markup ({{ or {%) at all: it is then sent as plain
// text, never parsed, so its value cannot be read as Liquid. Both are
// judged on the string as it comes out, ${env:...} values in it (which go
// in as written: they are settings, as the file itself is). In a request
// path a secret's value cannot hold a {placeholder} either, and under a
// pipeline's anchor or merge key no secret goes at all.
func (r *Resolver) ExpandIn(s string, where Where) (out string, secret bool, problems []Problem) {
	if strings.Contains(s, "${") {
		problems = Misspelled(s)
	}
	if !HasRef(s) {
		return s, false, problems
	}
	// In an expression a secret is first a placeholder, so that the
	// literals are found in the string as it comes out. No ${env:} value
	// holds a NUL (the environment cannot).
	type placed struct {
		name, value string
		offset      int
	}
	var inExpr []placed
	firstSecret := -1
	markupIn, markupAt := "", 0 // a secret whose own value holds Liquid markup
	var b strings.Builder
	last := 0
	for _, m := range refRE.FindAllStringSubmatchIndex(s, -1) {
		b.WriteString(s[last:m[0]])
		last = m[1]
		whole := s[m[0]:m[1]]
		if strings.HasPrefix(whole, "$$") {
			b.WriteString(whole[1:]) // escaped: keep "${...}" literally
			continue
		}
		kind, name := s[m[2]:m[3]], s[m[4]:m[5]]
		hasDefault := m[6] >= 0
		if !nameRE.MatchString(name) {
			problems = append(problems, Problem{m[0], fmt.Sprintf("%q is not a valid variable name in %s (use letters, digits and _)", name, whole)})
			continue
		}
		switch kind {
		case "env":
			// As in a shell (and docker compose), :- takes the default
			// when the variable is unset or empty.
			v, ok := r.lookupEnv(name)
			if (!ok || v == "") && hasDefault {
				v, ok = s[m[8]:m[9]], true
			}
			if !ok {
				fix := fmt.Sprintf("export it, pass --env-file, or give a default as ${env:%s:-value}", name)
				if r.Started {
					fix = fmt.Sprintf("give a default as ${env:%s:-value}, or export it (or pass --env-file) and start the engine again: a running one read the environment at its start", name)
				}
				problems = append(problems, Problem{m[0], fmt.Sprintf("environment variable %s is not set%s; %s", name, r.nearName(name, false), fix)})
				continue
			}
			b.WriteString(v)
		case "secret":
			if hasDefault {
				problems = append(problems, Problem{m[0], fmt.Sprintf("a secret cannot have a default value; remove %q", s[m[6]:m[7]])})
				continue
			}
			if where == InAnchor {
				problems = append(problems, Problem{m[0], fmt.Sprintf("${secret:%s} is inside a YAML anchor (&name) or merge key (<<): it could land where it is read as code; write it where it is used", name)})
				continue
			}
			v, err := r.secret(name)
			if err != nil {
				problems = append(problems, Problem{m[0], err.Error()})
				continue
			}
			r.masker.Add(v)
			if v == "" && (where == InTemplate || where == InPath) {
				// A header or body value a pipeline sends: an empty
				// credential went out without a word (a QA run).
				problems = append(problems, Problem{m[0], fmt.Sprintf("secret %s is empty (an empty file, or a variable set to nothing); every request would carry an empty value", name)})
				continue
			}
			if where == InPath && strings.ContainsAny(v, "{}") {
				problems = append(problems, Problem{m[0], fmt.Sprintf("the value of secret %s holds { or }, which a request path reads as a {placeholder}", name)})
				continue
			}
			secret = true
			if firstSecret < 0 {
				firstSecret = m[0]
			}
			if where == InTemplate && markupIn == "" && (strings.Contains(v, "{{") || strings.Contains(v, "{%")) {
				markupIn, markupAt = name, m[0]
			}
			if where == InExpression {
				fmt.Fprintf(&b, "\x00%d\x00", len(inExpr))
				inExpr = append(inExpr, placed{name, v, m[0]})
				continue
			}
			b.WriteString(v)
		}
	}
	b.WriteString(s[last:])
	out = b.String()
	switch {
	case markupIn != "":
		problems = append(problems, Problem{markupAt, fmt.Sprintf("the value of secret %s holds {{ or {%%, Liquid's markup, which a template would run; the engine cannot send such a value from a pipeline (a credential is usually letters, digits and a few signs: check the secret file)", markupIn)})
	case (where == InTemplate || where == InPath) && secret && (strings.Contains(out, "{{") || strings.Contains(out, "{%")):
		problems = append(problems, Problem{firstSecret, "a template that holds a secret is sent as plain text, never run, so it cannot hold Liquid ({{ or {%, its secret's value and ${env:...} values included); give the secret a field of its own (a header, a query parameter, a body key)"})
	case len(inExpr) > 0:
		literals := exprStrings(out)
		var e strings.Builder
		from := 0
		for i, p := range inExpr {
			token := fmt.Sprintf("\x00%d\x00", i)
			at := from + strings.Index(out[from:], token)
			if end, ok := literals[at-1]; !ok || end != at+len(token)+1 {
				problems = append(problems, Problem{p.offset, fmt.Sprintf(`in an expression a secret goes in as a whole string, "${secret:%s}", so its value is never read as code`, p.name)})
				continue
			}
			if !utf8.ValidString(p.value) {
				problems = append(problems, Problem{p.offset, fmt.Sprintf("the value of secret %s is not UTF-8 text, which an expression's string cannot hold exactly", p.name)})
				continue
			}
			e.WriteString(out[from : at-1])
			e.WriteString(strconv.Quote(p.value))
			from = at + len(token) + 1
		}
		e.WriteString(out[from:])
		out = e.String()
	}
	return out, secret, problems
}

// exprStrings maps where each double-quoted string literal of an expr
// source starts to where it ends (its quotes included), reading past
// single-quoted and backtick strings and comments as expr's lexer does:
// only a literal that is exactly "${secret:NAME}" may take a secret.
func exprStrings(src string) map[int]int {
	out := map[int]int{}
	for i := 0; i < len(src); i++ {
		switch c := src[i]; {
		case c == '"' || c == '\'':
			start := i
			for i++; i < len(src) && src[i] != c; i++ {
				if src[i] == '\\' {
					i++
				}
			}
			if c == '"' && i < len(src) {
				out[start] = i + 1
			}
		case c == '`':
			if end := strings.IndexByte(src[i+1:], '`'); end >= 0 {
				i += end + 1
			} else {
				i = len(src)
			}
		case strings.HasPrefix(src[i:], "//"):
			if end := strings.IndexByte(src[i:], '\n'); end >= 0 {
				i += end
			} else {
				i = len(src)
			}
		case strings.HasPrefix(src[i:], "/*"):
			if end := strings.Index(src[i+2:], "*/"); end >= 0 {
				i += end + 3
			} else {
				i = len(src)
			}
		}
	}
	return out
}

// kindRE finds what looks like a reference: ${word: (Braze's own ${name}
// has no colon).
var kindRE = regexp.MustCompile(`\$?\$\{([A-Za-z_]+):`)

// refNameRE reads the name after a misspelled kind, to repeat it in the
// suggestion: TOKEN in ${secert:TOKEN}.
var refNameRE = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)\}`)

// Misspelled finds references the engine would keep as text: an unknown
// kind (${secert:X}) or one with no closing brace. Kept, a typo in a
// webhook's bearer token made the text itself the token.
func Misspelled(s string) []Problem {
	var problems []Problem
	for _, m := range kindRE.FindAllStringSubmatchIndex(s, -1) {
		if s[m[0]] == '$' && s[m[0]+1] == '$' {
			continue // escaped
		}
		kind := s[m[2]:m[3]]
		switch {
		case kind != "env" && kind != "secret":
			// Only a near miss: other text may hold ${word: (a shell's
			// ${HOME:-/tmp} in a message body).
			want := diag.Closest(strings.ToLower(kind), []string{"env", "secret"})
			if strings.EqualFold(kind, "env") || strings.EqualFold(kind, "secret") {
				want = strings.ToLower(kind)
			}
			if want != "" {
				name := "NAME"
				if n := refNameRE.FindStringSubmatch(s[m[1]:]); n != nil {
					name = n[1]
				}
				problems = append(problems, Problem{m[0], fmt.Sprintf("${%s:...} is no reference the engine knows; did you mean ${%s:%s}? (write $${ to keep the text as it is)", kind, want, name)})
			}
		case refRE.FindStringIndex(s[m[0]:]) == nil || refRE.FindStringIndex(s[m[0]:])[0] != 0:
			rest := s[m[1]:]
			closing, next := strings.IndexByte(rest, '}'), strings.Index(rest, "${")
			if closing >= 0 && (next < 0 || closing < next) {
				problems = append(problems, Problem{m[0], fmt.Sprintf("this ${%s:...} is neither ${%s:NAME} nor ${env:NAME:-default}", kind, kind)})
			} else {
				problems = append(problems, Problem{m[0], fmt.Sprintf("${%s: has no closing }; write ${%s:NAME}", kind, kind)})
			}
		}
	}
	return problems
}

// secret reads NAME from a file in the secrets folder first (the way
// container platforms mount secrets), then from the environment.
func (r *Resolver) secret(name string) (string, error) {
	if r.secretsDir != "" {
		data, err := os.ReadFile(filepath.Join(r.secretsDir, name))
		if err == nil {
			return strings.TrimRight(string(data), "\r\n"), nil
		}
		if !os.IsNotExist(err) {
			return "", fmt.Errorf("secret %s: cannot read its file: %w", name, err)
		}
	}
	if v, ok := r.lookupEnv(name); ok {
		return v, nil
	}
	where := "export it"
	switch {
	case r.Started && r.secretsDir != "":
		where = fmt.Sprintf("write it to %s (a running engine read the environment at its start)", filepath.Join(r.secretsDir, name))
	case r.Started:
		where = "export it and start the engine again (a running one read the environment at its start), or start it with --secrets-dir and put it in a file named " + name + " there, which is read as it changes"
	case r.secretsDir != "":
		where += fmt.Sprintf(" or write it to %s", filepath.Join(r.secretsDir, name))
	default:
		where += " or put it in a file named " + name + " under --secrets-dir"
	}
	return "", fmt.Errorf("secret %s is not set%s; %s", name, r.nearName(name, true), where)
}

// nearName says which known name a reference that found nothing may have
// meant: the same name in another case, or one a typo or two away. A
// secret may also have meant a file of the secrets folder.
func (r *Resolver) nearName(name string, secret bool) string {
	var names []string
	if r.KnownNames != nil {
		names = r.KnownNames()
	}
	if files := r.Files(); secret && len(files) > 1 {
		for _, f := range files[1:] {
			names = append(names, filepath.Base(f))
		}
	}
	best := diag.Closest(name, names)
	for _, n := range names {
		if strings.EqualFold(n, name) && n != name {
			best = n
			break
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// Masker replaces known secret values with Mask. The zero value is ready;
// it is safe for concurrent use.
type Masker struct {
	mu       sync.RWMutex
	values   []string
	replacer *strings.Replacer
	// words are the forms of secrets too short to mask inside other
	// text: masked only where they stand whole.
	words []string
}

// shortSecret is the length under which a secret is masked only as a
// whole word. A placeholder such as "x" or "pw", masked wherever its
// letters appear, would turn every message into asterisks; a secret that
// short protects nothing anyway.
const shortSecret = 4

// Add registers a secret value (and nothing for an empty one).
func (m *Masker) Add(values ...string) { m.add(values, true) }

// AddBuilt adds credentials the engine built from settings and secrets
// (a Basic header of a username setting and a password secret), masked
// as written but not decoded: decoded, they are a setting, which stays
// readable (SessionM Core's API key in a URL path), and a secret masked
// already.
func (m *Masker) AddBuilt(values ...string) { m.add(values, false) }

func (m *Masker) add(values []string, decode bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	var all []string
	for _, v := range values {
		all = append(all, v)
		if decode {
			all = append(all, decodedBasic(v)...)
		}
	}
	for _, v := range all {
		if v == "" {
			continue
		}
		// A secret is printed escaped as often as raw: inside a JSON
		// string, a URL path or query. Each form is masked.
		for _, form := range escapedForms(v) {
			if len(v) < shortSecret {
				if !slices.Contains(m.words, form) {
					m.words = append(m.words, form)
				}
				continue
			}
			if !slices.Contains(m.values, form) {
				m.values = append(m.values, form)
				changed = true
			}
		}
	}
	if !changed {
		return
	}
	// Longest first, so a secret that contains another is masked whole.
	slices.SortFunc(m.values, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	pairs := make([]string, 0, 2*len(m.values))
	for _, v := range m.values {
		pairs = append(pairs, v, Mask)
	}
	m.replacer = strings.NewReplacer(pairs...)
}

// decodedBasic is what a secret that is a Basic credential already
// encoded (SessionM Connect's token: base64 of key:secret, with or
// without its "Basic " scheme, padded or not) says decoded: the whole,
// and each of its two parts that is long enough not to be an ordinary
// word. A peer refusing it quotes it decoded ("credentials key:secret
// rejected"). Only printable text counts: most random keys are valid
// base64 too, of bytes that are not text.
func decodedBasic(v string) []string {
	v = spec.BasicToken(v)
	raw, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		raw, err = base64.RawStdEncoding.DecodeString(v)
	}
	if err != nil || len(raw) < 8 || !utf8.Valid(raw) {
		return nil
	}
	text := string(raw)
	for _, c := range text {
		if !unicode.IsPrint(c) {
			return nil
		}
	}
	out := []string{text}
	if user, password, ok := strings.Cut(text, ":"); ok {
		for _, part := range []string{user, password} {
			if len(part) >= 8 {
				out = append(out, part)
			}
		}
	}
	return out
}

// escapedForms returns v as it may appear in output: raw, JSON-escaped
// (with and without HTML escaping, and with only ASCII, as Python writes
// JSON), Go-quoted (an expression's string literal), path- and
// query-escaped.
func escapedForms(v string) []string {
	goQuoted := strconv.Quote(v)
	forms := []string{v, url.PathEscape(v), url.QueryEscape(v), goQuoted[1 : len(goQuoted)-1], asciiJSON(v)}
	// A peer that read the header's bytes as Latin-1 (Python's
	// http.server does) echoes each byte of a non-ASCII character as one.
	latin1 := make([]rune, len(v))
	for i := range len(v) {
		latin1[i] = rune(v[i])
	}
	forms = append(forms, asciiJSON(string(latin1)))
	// Other encoders' percent forms (Python's quote keeps "/", RFC 3986
	// escapes all but the unreserved), and the secret encoded whole, as
	// a peer may echo it: base64 in its four forms, hex.
	forms = append(forms, percentEscape(v, "/"), percentEscape(v, ""), percentEscape(v, "!'()*"))
	// Liquid's url_escape keeps RFC 3986's reserved characters too.
	forms = append(forms, percentEscape(v, "!*'();:@&=+$,/?#[]"))
	for _, html := range []bool{true, false} {
		// As a JSON string, and (| json inside a JSON body) as one twice.
		once := jsonInner(v, html)
		forms = append(forms, once, jsonInner(once, html))
	}
	forms = append(forms, htmlForms(v)...)
	if len(v) >= 8 {
		// Encoded, a short secret is an ordinary word or number ("12" is
		// hex 3132): masked, it would hide those wherever they are.
		forms = append(forms, base64.StdEncoding.EncodeToString([]byte(v)), base64.RawStdEncoding.EncodeToString([]byte(v)),
			base64.URLEncoding.EncodeToString([]byte(v)), base64.RawURLEncoding.EncodeToString([]byte(v)),
			hex.EncodeToString([]byte(v)))
	}
	return forms
}

// htmlForms are v as HTML or XML escapers write it, for a peer that
// answers a refused key with an HTML page quoting it (a security review):
// & < > always, and quotes as each escaper does (Go's &#34; &#39;,
// Python's &quot; &#x27;, XML's &apos;, PHP's &#039;, or left as they are).
func htmlForms(v string) []string {
	if !strings.ContainsAny(v, `&<>"'`) {
		return nil
	}
	base := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(v)
	var forms []string
	for _, dq := range []string{`"`, "&#34;", "&quot;"} {
		for _, sq := range []string{"'", "&#39;", "&#x27;", "&apos;", "&#039;"} {
			forms = append(forms, strings.NewReplacer(`"`, dq, "'", sq).Replace(base))
		}
	}
	return forms
}

// jsonInner is v as encoding/json writes it inside a string's quotes,
// with or without its HTML escapes.
func jsonInner(v string, html bool) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(html)
	_ = enc.Encode(v)
	quoted := strings.TrimSpace(b.String())
	return quoted[1 : len(quoted)-1]
}

// percentEscape escapes each byte of v but the unreserved characters of
// RFC 3986 and those in keep, as %XX in upper case.
func percentEscape(v, keep string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := range len(v) {
		c := v[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("-._~", c) >= 0, strings.IndexByte(keep, c) >= 0:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}

// asciiJSON is v inside a JSON string as Python's json.dumps writes it:
// every character outside ASCII as \uXXXX.
func asciiJSON(v string) string {
	var b strings.Builder
	for _, c := range v {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\b':
			b.WriteString(`\b`)
		case c == '\f':
			b.WriteString(`\f`)
		case c < 0x20 || c > 0x7f:
			for _, unit := range utf16.Encode([]rune{c}) {
				fmt.Fprintf(&b, `\u%04x`, unit)
			}
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// String masks every known secret in s.
func (m *Masker) String(s string) string {
	if m == nil {
		return s
	}
	m.mu.RLock()
	r, words := m.replacer, m.words
	m.mu.RUnlock()
	if r != nil {
		s = r.Replace(s)
	}
	for _, w := range words {
		s = maskWord(s, w)
	}
	return s
}

// maskWord replaces each w in s that no letter, digit or underscore
// touches on either side.
func maskWord(s, w string) string {
	var b strings.Builder
	done := 0
	for from := 0; ; {
		i := strings.Index(s[from:], w)
		if i < 0 {
			break
		}
		start, end := from+i, from+i+len(w)
		if (start == 0 || !isWordByte(s[start-1])) && (end == len(s) || !isWordByte(s[end])) {
			b.WriteString(s[done:start])
			b.WriteString(Mask)
			done = end
			from = end
			continue
		}
		from = start + 1
	}
	if done == 0 {
		return s
	}
	b.WriteString(s[done:])
	return b.String()
}

func isWordByte(c byte) bool {
	return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// ReadEnvFile reads KEY=VALUE lines (blank lines and # comments skipped,
// values optionally in single or double quotes), as docker --env-file and
// dotenv files hold them.
func ReadEnvFile(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("env file: %w", err)
	}
	return ParseEnv(path, data)
}

// ParseEnv reads NAME=value lines; name is used in error messages.
func ParseEnv(path string, data []byte) (map[string]string, error) {
	out := map[string]string{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		key, value, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !ok || !nameRE.MatchString(key) {
			return nil, fmt.Errorf("%s:%d: expected NAME=value", path, i+1)
		}
		value = strings.TrimSpace(value)
		if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0] {
			value = value[1 : len(value)-1]
		}
		out[key] = value
	}
	return out, nil
}

// ChainNames lists the names LookupChain can find: the process
// environment's and those of each file.
func ChainNames(files ...map[string]string) []string {
	var names []string
	for _, kv := range os.Environ() {
		if name, _, ok := strings.Cut(kv, "="); ok {
			names = append(names, name)
		}
	}
	for _, f := range files {
		for name := range f {
			names = append(names, name)
		}
	}
	return names
}

// LookupChain looks a name up in the process environment first, then in
// each of files in order (values from --env-file fill in, never override).
func LookupChain(files ...map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		if v, ok := os.LookupEnv(name); ok {
			return v, true
		}
		for _, f := range files {
			if v, ok := f[name]; ok {
				return v, true
			}
		}
		return "", false
	}
}
