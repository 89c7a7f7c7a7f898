package yamlpos

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func mustParse(t *testing.T, src string) *Doc {
	t.Helper()
	d, err := Parse("f.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return d
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		line     int
		contains string
	}{
		{"unclosed flow sequence", "a: 1\nb: [\n", 2, "did not find expected node content"},
		{"bad indentation", "a: 1\n  b: 2\n", 2, "mapping values are not allowed"},
		// An unquoted value holding ": " (a QA run's expr map literal).
		{"a colon in a comment is not the one", "a: b\n  c: 1 # t: x\n", 2, "check the indentation"},
		{"a colon in an unquoted value", "a: 1\nexpr: map(xs, {\"k\": #})\n", 2, `this value holds ": ", which YAML reads as another key: put the value in quotes`},
		{"tab indentation", "a:\n\tb: 1\n", 2, "indented with a tab; YAML indentation must use spaces, not tabs"},
		{"tab after spaces", "a:\n  b: 1\n  c:\n  \td: 2\n", 4, "indented with a tab; YAML indentation must use spaces, not tabs"},
		{"tab under a mapping", "a:\n  b: 1\n\tc: 2\n", 3, "indented with a tab; YAML indentation must use spaces, not tabs"},
		{"unterminated quote", "x: 1\ny: 2\nz: \"open\n", 3, "quoted value that starts here is never closed; add the closing \" where"},
		{"unterminated quote with lines after it", "x: 1\nz: 'it''s open\ny: 2\nw:\n  - 3\n", 2, "quoted value that starts here is never closed; add the closing ' where"},
		{"unterminated quote on the first line", "a: \"open\nb: 1\nc: 2\n", 1, "quoted value that starts here is never closed"},
		{"unterminated quote on the last line, no newline", "a: 1\nb: 'open", 2, "quoted value that starts here is never closed"},
		{"unterminated quote near the top of a long file", "a: 1\nb: \"open\n" + strings.Repeat("c: 1\n", 5000), 2, "quoted value that starts here is never closed"},
		// A closed quote over lines before it is not the one (a review).
		{"unterminated quote after one over lines", "a: 1\nb: \"a long\n  text\n  over\n  many\n  lines\n  that\n  is\n  closed\"\nc: 1\nz: \"open\nd: 2\ne: 3\nf: 4\ng: 5\nh: 6\ni: 7\nj: 8\nk: 9\nl: 10\nm: 11\n",
			11, "quoted value that starts here is never closed; add the closing \" where"},
		{"a key indented less than its mapping's", "a: 1\nb:\n  c: 1\n  d: 2\n e: 3\n  f: 4\n", 5, "did not find expected key"},
		{"a list item among keys", "a: 1\nb:\n  c: 1\n  - d\n  f: 4\n", 4, "did not find expected key"},
		{"an unclosed [ in a mapping", "a: 1\nb:\n  c: 1\n  d: [1, 2\n  f: 4\ng: 5\n", 4, "expected ',' or ']'"},
		{"a quoted string over lines, then a mistake", "a: \"one\n  two\"\nb:\n  c: 1\n d: 2\n", 5, "did not find expected key"},
		{"a mistake on the last line, with no newline after it", "a: 1\nb:\n  c: 1\n  d: 2\n e: 3", 5, "did not find expected key"},
		{"second document", "a: 1\n---\nb: 2\n", 2, "one YAML document"},
		{"second empty document", "a: 1\n---\n", 2, "remove the second '---' document"},
		{"Latin-1 at a line's end", "a: 1\ndescription: caf\xe9\nb: 2\n", 2, "byte 0xE9 is not UTF-8 text: save the file as UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Parse("f.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("Parse = %+v, want an error", d)
			}
			var ye *Error
			if !errors.As(err, &ye) {
				t.Fatalf("error %T is not *Error", err)
			}
			if ye.Line != tt.line {
				t.Errorf("line = %d, want %d (%s)", ye.Line, tt.line, ye.Message)
			}
			if ye.Column < 1 {
				t.Errorf("column = %d, want >= 1", ye.Column)
			}
			// An open quote is pointed at.
			if strings.Contains(tt.contains, "quoted value") {
				if line := strings.Split(tt.src, "\n")[ye.Line-1]; ye.Column > len(line) || !strings.ContainsRune(`"'`, rune(line[ye.Column-1])) {
					t.Errorf("column = %d, not the quote's in %q", ye.Column, line)
				}
			}
			// A byte that is not UTF-8 is pointed at.
			if strings.Contains(tt.contains, "not UTF-8") {
				if line := strings.Split(tt.src, "\n")[ye.Line-1]; ye.Column > len(line) || line[ye.Column-1] != 0xe9 {
					t.Errorf("column = %d, not the byte's in %q", ye.Column, line)
				}
			}
			// A tab is pointed at: the column is the tab's.
			if strings.Contains(tt.contains, "tab") {
				if line := strings.Split(tt.src, "\n")[ye.Line-1]; ye.Column > len(line) || line[ye.Column-1] != '\t' {
					t.Errorf("column = %d, not the tab's in %q", ye.Column, line)
				}
			}
			if !strings.Contains(ye.Message, tt.contains) {
				t.Errorf("message %q does not contain %q", ye.Message, tt.contains)
			}
			if strings.Contains(ye.Message, "yaml:") || lineNumRE.MatchString(ye.Message) {
				t.Errorf("message %q keeps yaml.v3's prefix", ye.Message)
			}
			if want := fmt.Sprintf("%d:%d: %s", ye.Line, ye.Column, ye.Message); err.Error() != want {
				t.Errorf("Error() = %q, want %q", err.Error(), want)
			}
		})
	}
}

var lineNumRE = regexp.MustCompile(`line \d`)

// A file saved as UTF-16 with its byte-order mark is read, as yaml.v3
// reads it: the check for bytes that are not UTF-8 refused it (a review).
func TestParseUTF16WithBOM(t *testing.T) {
	src := []byte{0xFF, 0xFE}
	for _, r := range "a: caf\u00e9\n" {
		src = append(src, byte(r), byte(r>>8))
	}
	d, err := Parse("f.yaml", src)
	if err != nil {
		t.Fatalf("UTF-16LE with a BOM: %v", err)
	}
	if v := ToValue(d.Root); fmt.Sprint(v) != "map[a:café]" {
		t.Errorf("read %v", v)
	}
}

func TestParseEmptyAndSingle(t *testing.T) {
	tests := []struct {
		name string
		src  string
		kind yaml.Kind
		want any
	}{
		{"empty", "", yaml.MappingNode, map[string]any{}},
		{"only a comment", "# nothing\n", yaml.MappingNode, map[string]any{}},
		{"leading document marker", "---\na: x\n", yaml.MappingNode, map[string]any{"a": "x"}},
		{"sequence root", "- a\n- b\n", yaml.SequenceNode, []any{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := mustParse(t, tt.src)
			if d.File != "f.yaml" || string(d.Src) != tt.src {
				t.Errorf("File/Src not kept: %q %q", d.File, d.Src)
			}
			if d.Root == nil || d.Root.Kind != tt.kind {
				t.Fatalf("root = %+v, want kind %v", d.Root, tt.kind)
			}
			if got := ToValue(d.Root); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ToValue = %#v, want %#v", got, tt.want)
			}
		})
	}
}

const lookupSrc = `source:
  type: http
  auth:
    bearer: tok
steps:
  - name: wallet
    body:
      "x y": 1
  - name: second
list: [a, b]
`

func TestLookupAndKeyNode(t *testing.T) {
	d := mustParse(t, lookupSrc)
	tests := []struct {
		path            Path
		found           bool
		line, col       int // of the node Lookup returns
		value           string
		keyLine, keyCol int
		keyValue        string
	}{
		{Path{"source", "type"}, true, 2, 9, "http", 2, 3, "type"},
		{Path{"source", "auth", "bearer"}, true, 4, 13, "tok", 4, 5, "bearer"},
		{Path{"steps", 0, "name"}, true, 6, 11, "wallet", 6, 5, "name"},
		{Path{"steps", 0, "body", "x y"}, true, 8, 14, "1", 8, 7, "x y"},
		{Path{"steps", 1, "name"}, true, 9, 11, "second", 9, 5, "name"},
		// missing: the deepest existing node, and the mapping that lacks the key
		{Path{"source", "missing"}, false, 2, 3, "", 2, 3, ""},
		{Path{"steps", 5, "name"}, false, 6, 3, "", 6, 3, ""},
		{Path{"nope", "deeper"}, false, 1, 1, "", 1, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path.String(), func(t *testing.T) {
			n, ok := d.Lookup(tt.path)
			if ok != tt.found {
				t.Errorf("found = %v, want %v", ok, tt.found)
			}
			if n.Line != tt.line || n.Column != tt.col || n.Value != tt.value {
				t.Errorf("Lookup = %d:%d %q, want %d:%d %q", n.Line, n.Column, n.Value, tt.line, tt.col, tt.value)
			}
			k := d.KeyNode(tt.path)
			if k.Line != tt.keyLine || k.Column != tt.keyCol || k.Value != tt.keyValue {
				t.Errorf("KeyNode = %d:%d %q, want %d:%d %q", k.Line, k.Column, k.Value, tt.keyLine, tt.keyCol, tt.keyValue)
			}
		})
	}
	if d.KeyNode(nil) != d.Root {
		t.Errorf("KeyNode(nil) is not the root")
	}
	if n, ok := d.Lookup(nil); !ok || n != d.Root {
		t.Errorf("Lookup(nil) is not the root")
	}
}

func TestLookupThroughAlias(t *testing.T) {
	d := mustParse(t, "defs: &d\n  k: v\nuse: *d\n")
	n, ok := d.Lookup(Path{"use", "k"})
	if !ok || n.Value != "v" || n.Kind != yaml.ScalarNode {
		t.Errorf("Lookup through an alias = %+v, %v", n, ok)
	}
	use, _ := d.Lookup(Path{"use"})
	if use.Kind == yaml.AliasNode {
		t.Errorf("Lookup returned an alias node")
	}
}

func TestPathString(t *testing.T) {
	tests := []struct {
		path Path
		want string
	}{
		{Path{"a", "b", 0, "x y"}, `a.b[0]["x y"]`},
		{Path{0, "a"}, `[0].a`},
		{Path{"steps", 2, "body", "trigger_properties"}, `steps[2].body.trigger_properties`},
		{Path{"9x", "a-b", "c.d"}, `["9x"].a-b["c.d"]`},
		{Path{"q\"uote"}, `["q\"uote"]`},
		{Path{}, ``},
	}
	for _, tt := range tests {
		if got := tt.path.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.path, got, tt.want)
		}
	}
}

func TestPathChild(t *testing.T) {
	base := make(Path, 1, 4)
	base[0] = "a"
	x := base.Child("x")
	y := base.Child("y")
	if x.String() != "a.x" || y.String() != "a.y" || base.String() != "a" {
		t.Errorf("Child shares storage: base=%s x=%s y=%s", base, x, y)
	}
}

func TestToValue(t *testing.T) {
	src := `base: &b
  x: 1
  y: 2
obj:
  <<: *b
  y: 3
first:
  y: 4
  <<: *b
nums: [1, -2, 1.5, 0x10, 1e3, 12345678901234567890]
bools: [true, false, yes]
nulls: [~, null, Null]
strs: ["1", '2.5', "true", plain]
nested: {a: [{b: null}]}
`
	got := ToValue(mustParse(t, src).Root)
	want := map[string]any{
		"base":   map[string]any{"x": json.Number("1"), "y": json.Number("2")},
		"obj":    map[string]any{"x": json.Number("1"), "y": json.Number("3")},
		"first":  map[string]any{"x": json.Number("1"), "y": json.Number("4")},
		"nums":   []any{json.Number("1"), json.Number("-2"), json.Number("1.5"), json.Number("16"), json.Number("1000"), json.Number("12345678901234567890")},
		"bools":  []any{true, false, "yes"},
		"nulls":  []any{nil, nil, nil},
		"strs":   []any{"1", "2.5", "true", "plain"},
		"nested": map[string]any{"a": []any{map[string]any{"b": nil}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ToValue =\n%#v\nwant\n%#v", got, want)
	}
	// The value must encode as JSON exactly like the numbers were written.
	b, err := json.Marshal(got.(map[string]any)["nums"])
	if err != nil || string(b) != `[1,-2,1.5,16,1000,12345678901234567890]` {
		t.Errorf("json of nums = %s, %v", b, err)
	}
	if ToValue(nil) != nil {
		t.Errorf("ToValue(nil) != nil")
	}
}

const offsetSrc = `plain: hello world
dq: "say {{ x }}"
sq: 'it {{ y }}'
lit: |
  line one
  line {{ two }}
fold: >
  first line
  second {{ x }}
multi: first
  second {{ y }}
  third
`

func TestOffsetPos(t *testing.T) {
	d := mustParse(t, offsetSrc)
	tests := []struct {
		key       string
		at        string // the value from the offset on starts with this
		line, col int
	}{
		{"plain", "hello", 1, 8},
		{"plain", "world", 1, 14},
		{"dq", "say", 2, 6},
		{"dq", "{{ x }}", 2, 10},
		{"sq", "{{ y }}", 3, 9},
		{"lit", "line one", 5, 3},
		{"lit", "one", 5, 8},
		{"lit", "{{ two }}", 6, 8},
		{"fold", "first", 8, 3},
		{"fold", "second", 9, 3},
		{"fold", "{{ x }}", 9, 10},
		{"multi", "first", 10, 8},
		{"multi", "second", 11, 3},
		{"multi", "{{ y }}", 11, 10},
		{"multi", "third", 12, 3},
	}
	for _, tt := range tests {
		t.Run(tt.key+"/"+tt.at, func(t *testing.T) {
			n, ok := d.Lookup(Path{tt.key})
			if !ok {
				t.Fatalf("no key %s", tt.key)
			}
			off := strings.Index(n.Value, tt.at)
			if off < 0 {
				t.Fatalf("%q not in value %q", tt.at, n.Value)
			}
			line, col := d.OffsetPos(n, off)
			if line != tt.line || col != tt.col {
				t.Errorf("OffsetPos(%s, %d) = %d:%d, want %d:%d", tt.key, off, line, col, tt.line, tt.col)
			}
			// the position really holds the text in the source
			srcLine := strings.Split(offsetSrc, "\n")[line-1]
			if col-1 > len(srcLine) || !strings.HasPrefix(srcLine[col-1:], firstWord(tt.at)) {
				t.Errorf("source at %d:%d is %q, want %q", line, col, srcLine[min(col-1, len(srcLine)):], tt.at)
			}
		})
	}
	// A non-scalar gives its own position.
	seq := mustParse(t, "k:\n  - a\n")
	n, _ := seq.Lookup(Path{"k"})
	if l, c := seq.OffsetPos(n, 3); l != n.Line || c != n.Column {
		t.Errorf("OffsetPos on a sequence = %d:%d, want %d:%d", l, c, n.Line, n.Column)
	}
	if l, c := seq.OffsetPos(nil, 0); l != 0 || c != 0 {
		t.Errorf("OffsetPos(nil) = %d:%d, want 0:0", l, c)
	}
}

func firstWord(s string) string {
	if i := strings.IndexByte(s, ' '); i > 0 {
		return s[:i]
	}
	return s
}

// The line of a mistake far below where yaml.v3 says, in a long file
// (parsed once per line, 5,000 lines took minutes; see the benchmark).
func TestParseErrorInALongFile(t *testing.T) {
	src, lines := longFileWithAMistakeAtTheEnd()
	_, err := Parse("long.yaml", src)
	var ye *Error
	if !errors.As(err, &ye) || ye.Line != lines {
		t.Fatalf("error %v, want one at line %d", err, lines)
	}
}

func BenchmarkParseErrorInALongFile(b *testing.B) {
	src, _ := longFileWithAMistakeAtTheEnd()
	for b.Loop() {
		if _, err := Parse("long.yaml", src); err == nil {
			b.Fatal("no error")
		}
	}
}

func longFileWithAMistakeAtTheEnd() ([]byte, int) {
	var b strings.Builder
	b.WriteString("lookup:\n")
	for i := range 5000 {
		fmt.Fprintf(&b, "  - name: step%d\n    value: %d\n", i, i)
	}
	b.WriteString(" broken: 1\n")
	return []byte(b.String()), strings.Count(b.String(), "\n")
}

// An alias inside the value it names, and aliases that expand a file past
// MaxExpandedValues, are refused where they are: the first never ended
// (a stack overflow), the second ran the engine out of memory.
func TestParseRefusesRunawayAliases(t *testing.T) {
	bomb := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	for i, prev := 0, "a"; i < 6; i++ {
		name := string(rune('b' + i))
		bomb += fmt.Sprintf("%s: &%s [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n", name, name, prev, prev, prev, prev, prev, prev, prev, prev, prev, prev)
		prev = name
	}
	var table strings.Builder
	table.WriteString("lookup:\n")
	for i := range 60_000 {
		fmt.Fprintf(&table, "  k%d: v\n", i)
	}
	bigTable := table.String()
	tests := []struct {
		name, src string
		line, col int
		want      string // part of the error; empty: parses
	}{
		{"self alias", "body:\n  - &r\n    id: 1\n    extra: *r\n", 4, 12, "alias *r is inside the value &r names"},
		{"alias bomb", bomb, 7, 8, "add over 100000 values to it once expanded"},
		{"aliases and a merge", "base: &b {x: 1}\none: *b\ntwo:\n  <<: *b\n  y: 2\n", 0, 0, ""},
		{"many values written out, no alias", bigTable, 0, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("p.yaml", []byte(tt.src))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || !strings.Contains(e.Message, tt.want) || e.Line != tt.line || e.Column != tt.col {
				t.Fatalf("Parse: %v; want %d:%d: ...%s", err, tt.line, tt.col, tt.want)
			}
		})
	}
}
