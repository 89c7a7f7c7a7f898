package secrets

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

func mapEnv(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestExpand(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "TOKEN", "from-file\n")
	writeFile(t, dir, "CRLF", "crlf-value\r\n")
	env := map[string]string{
		"HOST":    "h.example",
		"TOKEN":   "from-env",
		"ONLYENV": "env-secret",
		"EMPTY":   "",
	}
	tests := []struct {
		name, in, want string
		secret         bool
	}{
		{"env", "https://${env:HOST}/x", "https://h.example/x", false},
		{"env default unused", "${env:HOST:-dflt}", "h.example", false},
		{"env default used", "${env:NOPE:-dflt}", "dflt", false},
		{"env empty default", "[${env:NOPE:-}]", "[]", false},
		{"set but empty env takes the default, as in a shell", "[${env:EMPTY:-dflt}]", "[dflt]", false},
		{"set but empty env without a default", "[${env:EMPTY}]", "[]", false},
		{"default with a colon", "${env:NOPE:-a:b}", "a:b", false},
		{"secret file wins over env", "Bearer ${secret:TOKEN}", "Bearer from-file", true},
		{"secret file CRLF trimmed", "${secret:CRLF}", "crlf-value", true},
		{"secret from env", "${secret:ONLYENV}", "env-secret", true},
		{"escape stays literal", "$${env:HOST}", "${env:HOST}", false},
		{"escaped secret stays literal", "x $${secret:TOKEN} y", "x ${secret:TOKEN} y", false},
		{"braze attribute untouched", "{{${user_id}}} on ${env:HOST}", "{{${user_id}}} on h.example", false},
		{"no reference", "plain ${user_id}", "plain ${user_id}", false},
		{"several", "${env:HOST}/${secret:TOKEN}/${env:HOST}", "h.example/from-file/h.example", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Masker{}
			r := NewResolver(mapEnv(env), dir, m)
			got, secret, problems := r.Expand(tt.in)
			if len(problems) > 0 {
				t.Fatalf("problems: %+v", problems)
			}
			if got != tt.want || secret != tt.secret {
				t.Errorf("Expand(%q) = %q, secret=%v; want %q, secret=%v", tt.in, got, secret, tt.want, tt.secret)
			}
			if r.Masker() != m {
				t.Errorf("Masker() is not the masker given")
			}
			// every resolved secret is masked; nothing else is
			masked := m.String(got)
			if tt.secret && strings.Contains(masked, "from-file") {
				t.Errorf("secret not masked: %q", masked)
			}
			if !tt.secret && masked != got {
				t.Errorf("a non-secret value was masked: %q -> %q", got, masked)
			}
		})
	}
}

func TestExpandProblems(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"HOST": "h"}
	tests := []struct {
		name     string
		dir      string
		in       string
		offsets  []int
		contains [][]string
	}{
		{"unset env", "", "ab ${env:NOPE}", []int{3},
			[][]string{{"environment variable NOPE is not set", "${env:NOPE:-value}"}}},
		{"unset secret with a dir", dir, "abc ${secret:MISSING}", []int{4},
			[][]string{{"secret MISSING is not set", filepath.Join(dir, "MISSING")}}},
		{"unset secret without a dir", "", "${secret:MISSING}", []int{0},
			[][]string{{"secret MISSING is not set", "--secrets-dir"}}},
		{"invalid name", "", "x ${env:1BAD}", []int{2}, [][]string{{`"1BAD" is not a valid variable name`, "${env:1BAD}"}}},
		{"invalid name with a dash", "", "x ${env:BAD-NAME}", []int{2}, [][]string{{`"BAD-NAME" is not a valid variable name`}}},
		{"path in a secret name", dir, "${secret:../etc/passwd}", []int{0}, [][]string{{"not a valid variable name"}}},
		{"empty name", "", "x ${env:}", []int{2}, [][]string{{`"" is not a valid variable name`}}},
		{"secret with default", "", "x ${secret:TOKEN:-d}", []int{2}, [][]string{{"a secret cannot have a default value", `":-d"`}}},
		{"several problems", dir, "${env:HOST}${env:NOPE}${secret:NOPE2}", []int{11, 22},
			[][]string{{"NOPE is not set"}, {"secret NOPE2 is not set"}}},
		{"offset after an escape", "", "$${env:X} ${env:NOPE}", []int{10}, [][]string{{"NOPE"}}},
		{"a misspelled kind", "", "Bearer ${secert:TOKEN}", []int{7}, [][]string{{"${secert:...} is no reference", "did you mean ${secret:TOKEN}?", "$${"}}},
		{"a misspelled env", "", "${evn:HOST}/x", []int{0}, [][]string{{"did you mean ${env:HOST}?"}}},
		{"a misspelled kind without a plain name", "", "${secrt:a-b}", []int{0}, [][]string{{"did you mean ${secret:NAME}?"}}},
		{"no closing brace", "", "x ${secret:TOKEN", []int{2}, [][]string{{"${secret: has no closing }"}}},
		{"no closing brace before a good one", "", "${env:A ${env:HOST}", []int{0}, [][]string{{"${env: has no closing }"}}},
		{"Braze's own references", "", "{{campaign.${dispatch_id}}}-{{${user_id}}}", nil, nil},
		{"an escaped unknown kind", "", "$${foo:bar}", nil, nil},
		{"a shell's default in a message", "", "echo ${HOME:-/tmp} and ${amount:.2f}", nil, nil},
		{"the kind in capitals", "", "${SECRET:TOKEN}", []int{0}, [][]string{{"${SECRET:...} is no reference", "did you mean ${secret:TOKEN}?"}}},
		{"a colon too many", "", "${env:A:B}", []int{0}, [][]string{{"neither ${env:NAME} nor ${env:NAME:-default}"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, secret, problems := NewResolver(mapEnv(env), tt.dir, &Masker{}).Expand(tt.in)
			if secret {
				t.Errorf("secret = true with no secret resolved")
			}
			if len(problems) != len(tt.offsets) {
				t.Fatalf("problems = %+v, want %d", problems, len(tt.offsets))
			}
			for i, p := range problems {
				if p.Offset != tt.offsets[i] {
					t.Errorf("problem %d offset = %d, want %d", i, p.Offset, tt.offsets[i])
				}
				if !strings.HasPrefix(tt.in[p.Offset:], "${") {
					t.Errorf("problem %d offset %d does not point at a reference: %q", i, p.Offset, tt.in[p.Offset:])
				}
				for _, c := range tt.contains[i] {
					if !strings.Contains(p.Message, c) {
						t.Errorf("message %q does not contain %q", p.Message, c)
					}
				}
			}
		})
	}
}

// Once engine run has started, a reload's unset reference says what
// works without a restart first: the environment and --env-file were read
// at the start, a secret file is read as it changes.
func TestUnsetReferencesOfARunningEngine(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, dir, in, want string
	}{
		{"env", "", "${env:NOPE}", "give a default as ${env:NOPE:-value}, or export it (or pass --env-file) and start the engine again"},
		{"secret with a dir", dir, "${secret:MISSING}", "write it to " + filepath.Join(dir, "MISSING") + " (a running engine read the environment at its start)"},
		{"secret without a dir", "", "${secret:MISSING}", "export it and start the engine again (a running one read the environment at its start), or start it with --secrets-dir"},
	} {
		r := NewResolver(mapEnv(nil), tt.dir, &Masker{})
		r.Started = true
		_, _, problems := r.Expand(tt.in)
		if len(problems) != 1 || !strings.Contains(problems[0].Message, tt.want) {
			t.Errorf("%s: %+v, want one problem saying %q", tt.name, problems, tt.want)
		}
	}
}

func TestHasRef(t *testing.T) {
	tests := map[string]bool{
		"${env:X}":      true,
		"a ${secret:Y}": true,
		"${user_id}":    false,
		"env:X":         false,
		"":              false,
	}
	for in, want := range tests {
		if got := HasRef(in); got != want {
			t.Errorf("HasRef(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestMasker(t *testing.T) {
	tests := []struct {
		name   string
		add    [][]string // successive Add calls
		in     string
		want   string
		secret map[string]bool
	}{
		{"longest first, short added first", [][]string{{"abc"}, {"abcdef"}}, "x abcdef abc y", "x **** **** y",
			map[string]bool{"abc": true, "abcdef": true, "abcd": false}},
		{"longest first, same call", [][]string{{"tok", "tok-long-1"}}, "tok-long-1/tok", "****/****", nil},
		{"empty value ignored", [][]string{{"", "s3cr3t"}}, "a s3cr3t b", "a **** b", map[string]bool{"": false}},
		{"only empty values", [][]string{{""}}, "nothing here", "nothing here", map[string]bool{"": false}},
		{"duplicates", [][]string{{"pass"}, {"pass"}}, "passpass", "********", map[string]bool{"pass": true}},
		{"short: only whole words", [][]string{{"a", "pw"}}, "a bad pw, pwd and a_pw: a", "**** bad ****, pwd and a_pw: ****",
			map[string]bool{"a": true, "pw": true, "pwpw": false}},
		{"short next to each other", [][]string{{"x"}}, "x x/x", "**** ****/****", nil},
		{"short and long", [][]string{{"abc", "abcdefgh"}}, "abcdefgh abc abcd", "**** **** abcd", nil},
		{"short, escaped forms whole", [][]string{{"a/"}}, `"a/" /apps/a%2F/x a%2Fb`, `"****" /apps/****/x a%2Fb`, nil},
		{"nothing added", nil, "abc", "abc", map[string]bool{"abc": false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Masker{}
			for _, vs := range tt.add {
				m.Add(vs...)
			}
			if got := m.String(tt.in); got != tt.want {
				t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
			}
			for s, want := range tt.secret {
				if got := m.String(s) == Mask; got != want {
					t.Errorf("%q masked whole = %v, want %v", s, got, want)
				}
			}
		})
	}
	var nilMasker *Masker
	if got := nilMasker.String("abc"); got != "abc" {
		t.Errorf("nil masker changed the input: %q", got)
	}
}

func TestMaskerConcurrent(t *testing.T) {
	m := &Masker{}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range 50 {
				m.Add(fmt.Sprintf("secret-%02d-%02d", g, i))
			}
		}()
		go func() {
			defer wg.Done()
			for i := range 50 {
				own := fmt.Sprintf("secret-%02d-%02d", g, i)
				_ = m.String("log line with " + own)
			}
		}()
	}
	wg.Wait()
	for g := range 16 {
		for i := range 50 {
			s := fmt.Sprintf("secret-%02d-%02d", g, i)
			if got := m.String("[" + s + "]"); got != "["+Mask+"]" {
				t.Fatalf("after all Adds, %s masks to %q", s, got)
			}
		}
	}
}

func TestReadEnvFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		want    map[string]string
		errLine int // 0: no error
	}{
		{"values", "# comment\n\nA=1\nexport B=two\nC=\"quoted value\"\nD='single'\n  E = spaced  \nF=\nG=a=b\nH=\"unbalanced\n",
			map[string]string{"A": "1", "B": "two", "C": "quoted value", "D": "single", "E": "spaced", "F": "", "G": "a=b", "H": `"unbalanced`}, 0},
		{"CRLF", "A=1\r\nB=\"x\"\r\n", map[string]string{"A": "1", "B": "x"}, 0},
		{"empty file", "", map[string]string{}, 0},
		{"line without equals", "A=1\n# c\nJUSTANAME\n", nil, 3},
		{"bad key", "A=1\n1X=2\n", nil, 2},
		{"key with a dash", "MY-KEY=1\n", nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, dir, strings.ReplaceAll(tt.name, " ", "_")+".env", tt.content)
			got, err := ReadEnvFile(path)
			if tt.errLine == 0 {
				if err != nil {
					t.Fatalf("ReadEnvFile: %v", err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("ReadEnvFile = %q, want %q", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ReadEnvFile = %q, want an error at line %d", got, tt.errLine)
			}
			prefix := fmt.Sprintf("%s:%d: ", path, tt.errLine)
			if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), "NAME=value") {
				t.Errorf("error %q does not start with %q and name NAME=value", err, prefix)
			}
		})
	}
	if _, err := ReadEnvFile(filepath.Join(dir, "missing.env")); err == nil || !strings.Contains(err.Error(), "env file") {
		t.Errorf("missing file: error %v, want one that names the env file", err)
	}
}

func TestLookupChain(t *testing.T) {
	t.Setenv("LC_TEST_PROCESS", "from-process")
	t.Setenv("LC_TEST_EMPTY", "")
	first := map[string]string{"LC_TEST_PROCESS": "from-file-1", "LC_TEST_FILE": "file-1", "LC_TEST_EMPTY": "file-empty"}
	second := map[string]string{"LC_TEST_FILE": "file-2", "LC_TEST_SECOND": "file-2-only"}
	look := LookupChain(first, second)
	tests := []struct {
		name   string
		want   string
		wantOK bool
	}{
		{"LC_TEST_PROCESS", "from-process", true},
		{"LC_TEST_EMPTY", "", true},
		{"LC_TEST_FILE", "file-1", true},
		{"LC_TEST_SECOND", "file-2-only", true},
		{"LC_TEST_NOWHERE_AT_ALL", "", false},
	}
	for _, tt := range tests {
		got, ok := look(tt.name)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("lookup(%s) = %q, %v; want %q, %v", tt.name, got, ok, tt.want, tt.wantOK)
		}
	}
	// The chain feeds a resolver: the process value wins.
	out, _, problems := NewResolver(look, "", &Masker{}).Expand("${env:LC_TEST_PROCESS}/${env:LC_TEST_SECOND}")
	if len(problems) > 0 || out != "from-process/file-2-only" {
		t.Errorf("Expand through the chain = %q, %+v", out, problems)
	}
}

// A reference that finds nothing names the known name it may have meant:
// a typo or two away, or the same name in another case; for a secret, a
// file of the secrets folder too. A name nothing is close to gets no
// guess.
func TestUnsetReferenceSuggestsANearName(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "WALLET_TOKEN", "t")
	t.Setenv("SUGGEST_TEST_FROM_PROCESS", "p")
	file := map[string]string{"BRAZE_API_KEY": "k", "SESSIONM_SECRET": "s"}
	tests := []struct{ in, want string }{
		{"${secret:BRAZE_API_KY}", "secret BRAZE_API_KY is not set (did you mean BRAZE_API_KEY?); "},
		{"${secret:braze_api_key}", "(did you mean BRAZE_API_KEY?)"},
		{"${secret:WALLET_TOKNE}", "(did you mean WALLET_TOKEN?)"},
		{"${env:SESIONM_SECRET}", "environment variable SESIONM_SECRET is not set (did you mean SESSIONM_SECRET?); "},
		{"${env:SUGGEST_TEST_FROM_PROCES}", "(did you mean SUGGEST_TEST_FROM_PROCESS?)"},
		// a file of the secrets folder is no environment variable
		{"${env:WALLET_TOKNE}", "environment variable WALLET_TOKNE is not set; "},
		{"${secret:SOMETHING_ELSE}", "secret SOMETHING_ELSE is not set; "},
	}
	r := NewResolver(LookupChain(file), dir, &Masker{})
	r.KnownNames = func() []string { return ChainNames(file) }
	for _, tt := range tests {
		_, _, problems := r.Expand(tt.in)
		if len(problems) != 1 || !strings.Contains(problems[0].Message, tt.want) {
			t.Errorf("%s: problems %+v, want one containing %q", tt.in, problems, tt.want)
		}
	}
}

// A secret printed escaped (in JSON, a URL path or query) is masked too.
func TestMaskerEscapedForms(t *testing.T) {
	m := &Masker{}
	m.Add(`k<ey>&"q\x`, "ab/cd+ef==", "Tk+/=?aB9x")
	for _, printed := range []string{
		`"Bearer k\u003cey\u003e\u0026\"q\\x"`, // encoding/json with HTML escaping
		`"Bearer k<ey>&\"q\\x"`,                // without
		"?api_key=ab%2Fcd%2Bef%3D%3D",          // query
		"/keys/ab%2Fcd+ef==/x",                 // path
		`got "Bearer k<ey>&\"q\\x"`,            // Go-quoted, as an expression's literal
	} {
		if got := m.String(printed); !strings.Contains(got, Mask) || strings.Contains(got, "u003cey") || strings.Contains(got, "<ey") || strings.Contains(got, "cd") {
			t.Errorf("%s printed as %s", printed, got)
		}
	}
	// A security review: Python's quote (keeps "/"), RFC 3986 and
	// encodeURIComponent, base64 and hex were echoed unmasked.
	for _, form := range []string{"Tk%2B/%3D%3FaB9x", "Tk%2B%2F%3D%3FaB9x", "VGsrLz0/YUI5eA==", "VGsrLz0_YUI5eA", "546b2b2f3d3f61423978"} {
		if got := m.String("token=" + form + " end"); got != "token="+Mask+" end" {
			t.Errorf("%s printed as %s", form, got)
		}
	}
	// A peer's HTML error page quoting a refused key, as Go, Python, XML
	// and PHP escape it (a security review).
	m.Add(`Key&Secret'<99>"`)
	for _, form := range []string{
		"Key&amp;Secret&#39;&lt;99&gt;&#34;", "Key&amp;Secret&#x27;&lt;99&gt;&quot;",
		"Key&amp;Secret&apos;&lt;99&gt;&quot;", "Key&amp;Secret&#039;&lt;99&gt;&quot;", `Key&amp;Secret'&lt;99&gt;"`,
	} {
		if got := m.String("<p>API key " + form + " is not valid</p>"); got != "<p>API key "+Mask+" is not valid</p>" {
			t.Errorf("%s printed as %s", form, got)
		}
	}
}

// What a template makes of a secret that reached it in event data: Liquid's
// url_escape, and | json inside a JSON body (escaped twice) (a QA run).
func TestMaskerTemplateForms(t *testing.T) {
	m := &Masker{}
	m.Add(`p@ss/w rd+"x&y`)
	for _, printed := range []string{
		`A%20p@ss/w%20rd+%22x&y%20B`,         // url_escape
		`"note":"\"A p@ss/w rd+\\\"x&y B\""`, // | json, in a JSON string
	} {
		if got := m.String(printed); !strings.Contains(got, Mask) || strings.Contains(got, "ss/w") {
			t.Errorf("%s printed as %s", printed, got)
		}
	}
}

// A peer written in Python echoes a non-ASCII secret as \uXXXX escapes
// in its JSON, and one that read the header as Latin-1 escapes each byte.
func TestMaskerASCIIOnlyJSON(t *testing.T) {
	m := &Masker{}
	m.Add(`Ev"il\Tok&é1`)
	for _, printed := range []string{
		`{"got": "Bearer Ev\"il\\Tok&\u00e91"}`,
		`{"got": "Bearer Ev\"il\\Tok&\u00c3\u00a91"}`,
	} {
		if got := m.String(printed); !strings.Contains(got, Mask) || strings.Contains(got, "Tok") {
			t.Errorf("%s printed as %s", printed, got)
		}
	}
}

// In an expression a secret goes in only as a whole string literal, which
// holds its value exactly, quotes and all; in a template a secret with
// Liquid's delimiters is refused. Neither is read as code, and a problem
// never quotes the value.
func TestExpandInExpressionsAndTemplates(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "QUOTE", `Zq"Xy7 || true`)
	writeFile(t, dir, "LIQUID", `Ab{{ "c" }}Zq`)
	writeFile(t, dir, "PLAIN", "s3cr3t")
	writeFile(t, dir, "BRACE", "{zz")
	writeFile(t, dir, "BRACE_END", "zz{")
	writeFile(t, dir, "PLACEHOLDER", "ab{zzpart}cd")
	writeFile(t, dir, "BINARY", "p\xe4ss")
	writeFile(t, dir, "EMPTY", "\n")
	tests := []struct {
		name    string
		in      string
		where   Where
		want    string
		problem string
	}{
		{"expr: a whole string", `event.k == "${secret:QUOTE}"`, InExpression, `event.k == "Zq\"Xy7 || true"`, ""},
		{"expr: plain value", `event.k == "${secret:PLAIN}" && x`, InExpression, `event.k == "s3cr3t" && x`, ""},
		{"expr: unquoted", `event.k == ${secret:PLAIN}`, InExpression, "", `a whole string, "${secret:PLAIN}"`},
		{"expr: part of a string", `event.k == "Bearer ${secret:PLAIN}"`, InExpression, "", "a whole string"},
		{"expr: env as written", `event.n > ${env:LIMIT}`, InExpression, `event.n > 10`, ""},
		{"template: plain value", `Bearer ${secret:PLAIN}`, InTemplate, `Bearer s3cr3t`, ""},
		{"template: an empty secret", `Bearer ${secret:EMPTY}`, InTemplate, "", "secret EMPTY is empty"},
		{"text: an empty secret is the setting's to judge", `${secret:EMPTY}`, InText, "", ""},
		{"template: Liquid in the value", `${secret:LIQUID}`, InTemplate, "", "the value of secret LIQUID holds {{ or {%"},
		{"template: Liquid in the value, beside text", `Key ${secret:LIQUID}`, InTemplate, "", "the value of secret LIQUID holds {{ or {%"},
		{"template: Liquid made with the text around it", `x{${secret:BRACE}`, InTemplate, "", "cannot hold Liquid"},
		{"template: Liquid made with an env value", `x ${secret:BRACE_END}${env:OPEN}`, InTemplate, "", "cannot hold Liquid"},
		{"template: inside a tag", `{% if event.k == "${secret:PLAIN}" %}y{% endif %}`, InTemplate, "", "cannot hold Liquid"},
		{"template: inside an output", `{{ "${secret:PLAIN}" | upcase }}`, InTemplate, "", "cannot hold Liquid"},
		{"template: beside markup", `{% if x %}Bearer ${secret:PLAIN}{% endif %}`, InTemplate, "", "cannot hold Liquid"},
		{"template: an HTML comment is text", `${secret:PLAIN}<!-- tier -->`, InTemplate, `s3cr3t<!-- tier -->`, ""},
		{"expr: an env value that ends a string early", `event.dir == "${env:WINDIR}" && event.k == "${secret:PLAIN}"`, InExpression, "", "a whole string"},
		{"expr: in a single-quoted string", `event.k == 'a"${secret:PLAIN}"b'`, InExpression, "", "a whole string"},
		{"expr: in a raw string", "event.k == `${secret:PLAIN}`", InExpression, "", "a whole string"},
		{"expr: in a comment", `event.k == "x" /* "${secret:PLAIN}" */`, InExpression, "", "a whole string"},
		{"expr: two sharing a quote", `event.k == "${secret:PLAIN}"${secret:QUOTE}"`, InExpression, "", `a whole string, "${secret:QUOTE}"`},
		{"expr: not UTF-8", `event.k == "${secret:BINARY}"`, InExpression, "", "not UTF-8"},
		{"anchor", `Bearer ${secret:PLAIN}`, InAnchor, "", "inside a YAML anchor"},
		{"path: a placeholder in the value", `/x/${secret:PLACEHOLDER}`, InPath, "", "holds { or }"},
		{"path: plain value", `/x/${secret:PLAIN}`, InPath, `/x/s3cr3t`, ""},
		{"anchor: env as written", `${env:LIMIT}`, InAnchor, "10", ""},
		{"text: Liquid in the value is text", `${secret:LIQUID}`, InText, `Ab{{ "c" }}Zq`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewResolver(mapEnv(map[string]string{"LIMIT": "10", "OPEN": "{ event.id }}", "WINDIR": `C:\`}), dir, &Masker{})
			got, _, problems := r.ExpandIn(tt.in, tt.where)
			if tt.problem == "" {
				if len(problems) > 0 || got != tt.want {
					t.Fatalf("ExpandIn(%q) = %q, %+v; want %q", tt.in, got, problems, tt.want)
				}
				return
			}
			if len(problems) != 1 || !strings.Contains(problems[0].Message, tt.problem) {
				t.Fatalf("problems %+v; want one saying %q", problems, tt.problem)
			}
			for _, leak := range []string{"Zq", "s3cr3t", "zz", "\xe4"} {
				if strings.Contains(problems[0].Message, leak) {
					t.Errorf("the problem quotes the value: %s", problems[0].Message)
				}
			}
		})
	}
}

// The secrets folder and its files a reference could read, without a
// Kubernetes volume's ..data links and timestamped folders; a change to
// ..data is one to watch, though.
func TestResolverFiles(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"..2026_11_30_00_00_00.1", "..data"} {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "API_TOKEN"), []byte("t"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := NewResolver(nil, dir, &Masker{})
	if got := r.Files(); !slices.Equal(got, []string{dir, filepath.Join(dir, "API_TOKEN")}) {
		t.Fatalf("files %v", got)
	}
	for path, want := range map[string]bool{filepath.Join(dir, "API_TOKEN"): true, filepath.Join(dir, "..data"): true, filepath.Join(dir, "notes.txt"): false, "API_TOKEN": false} {
		if r.Reads(path) != want {
			t.Errorf("Reads(%s) = %v", path, !want)
		}
	}
	for _, folder := range []string{"", filepath.Join(dir, "no-such")} {
		if got := NewResolver(nil, folder, &Masker{}).Files(); got != nil {
			t.Fatalf("secrets folder %q: files %v", folder, got)
		}
	}
}

// A secret that is a Basic credential already encoded (SessionM Connect's
// token) is masked decoded too, whole and in its parts: SessionM refusing
// it can quote it ("credentials key:secret rejected"). A secret that
// decodes to bytes that are not text adds nothing.
func TestMaskerDecodedBasicCredential(t *testing.T) {
	m := &Masker{}
	token := base64.StdEncoding.EncodeToString([]byte("TOPSECRET-connect:secret-xyz"))
	m.Add(token, "0123456789abcdef0123456789abcdef") // hex: valid base64 of binary
	for _, printed := range []string{
		"credentials TOPSECRET-connect:secret-xyz rejected",
		`{"message":"unknown key TOPSECRET-connect"}`,
		"password secret-xyz expired",
		"Basic " + token,
	} {
		if got := m.String(printed); !strings.Contains(got, Mask) || strings.Contains(got, "TOPSECRET") || strings.Contains(got, "secret-xyz") {
			t.Errorf("%s printed as %s", printed, got)
		}
	}
	if got := m.String("user 0123 and text"); got != "user 0123 and text" {
		t.Errorf("a hex key masked ordinary text: %s", got)
	}
	// Each part on its own: a short user name is not masked alone (it
	// may be an ordinary word), its long password is.
	short := &Masker{}
	short.Add(base64.StdEncoding.EncodeToString([]byte("admin:correct-horse")))
	if got := short.String("user admin logged in; password correct-horse"); !strings.Contains(got, "user admin") || strings.Contains(got, "correct-horse") {
		t.Errorf("user admin, password correct-horse printed as %s", got)
	}
	// With its scheme, as SESSIONM_CONNECT_AUTH may be given, or unpadded.
	for _, given := range []string{
		"Basic " + base64.StdEncoding.EncodeToString([]byte("prefixed-key:prefixed-secret")),
		"basic " + base64.StdEncoding.EncodeToString([]byte("prefixed-key:prefixed-secret")),
		base64.RawStdEncoding.EncodeToString([]byte("prefixed-key:prefixed-secret")), // 28 bytes: unpadded differs
	} {
		m := &Masker{}
		m.Add(given)
		if got := m.String("credentials prefixed-key:prefixed-secret rejected"); strings.Contains(got, "prefixed") {
			t.Errorf("%s: printed as %s", given, got)
		}
	}
}

// A short secret's encoded forms are ordinary text: "12" is hex 3132 and
// base64 MTI, which masked would hide an order number (a review).
func TestMaskerLeavesShortSecretsEncodedFormsAlone(t *testing.T) {
	m := &Masker{}
	m.Add("12")
	if got := m.String("order 3132 shipped, ref MTI"); got != "order 3132 shipped, ref MTI" {
		t.Errorf("masked as %q", got)
	}
}
