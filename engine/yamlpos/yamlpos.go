// Package yamlpos parses YAML while keeping where every value came from, so
// that a problem found after decoding (by the JSON Schema, by the expr
// compiler, by the Liquid parser) can still be reported at the right line
// and column of the file the user edits.
package yamlpos

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Doc is one parsed YAML document.
type Doc struct {
	File string
	Src  []byte
	Root *yaml.Node // the document's top-level value (usually a mapping)
}

// Error is a YAML syntax error with the position yaml.v3 gave.
type Error struct {
	Line, Column int
	Message      string
}

func (e *Error) Error() string { return fmt.Sprintf("%d:%d: %s", e.Line, e.Column, e.Message) }

var yamlLineRE = regexp.MustCompile(`^yaml: (?:line (\d+): )?`)

// Parse parses src as a single YAML document. An empty document gives an
// empty mapping, so that callers report missing keys rather than a vague
// "empty file".
func Parse(file string, src []byte) (*Doc, error) {
	// UTF-16 with its byte-order mark (Notepad's "Unicode") is yaml.v3's
	// to read, as it did before this check.
	if !utf8.Valid(src) && !bytes.HasPrefix(src, []byte{0xFF, 0xFE}) && !bytes.HasPrefix(src, []byte{0xFE, 0xFF}) {
		// yaml.v3 says "invalid trailing UTF-8 octet", at column 1 of
		// the line after the byte when it ends a line.
		return nil, notUTF8(src)
	}
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var doc yaml.Node
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) {
		return &Doc{File: file, Src: src, Root: &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: 1, Column: 1}}, nil
	}
	if err != nil {
		return nil, syntaxError(err, src)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{Line: extra.Line, Column: extra.Column, Message: "a pipeline file holds one YAML document; remove the second '---' document"}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if err := checkAliases(root); err != nil {
		return nil, err
	}
	return &Doc{File: file, Src: src, Root: root}, nil
}

// notUTF8 places the first byte of src that is not UTF-8 (a file saved as
// Latin-1 or Windows-1252: "café" as caf\xe9).
func notUTF8(src []byte) *Error {
	line, col := 1, 1
	for i := 0; i < len(src); {
		r, size := utf8.DecodeRune(src[i:])
		if r == utf8.RuneError && size == 1 {
			return &Error{Line: line, Column: col, Message: fmt.Sprintf("byte 0x%02X is not UTF-8 text: save the file as UTF-8 (it looks saved as Latin-1 or Windows-1252)", src[i])}
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		i += size
	}
	return nil
}

// MaxExpandedValues bounds how many values aliases may add to a file once
// expanded: a few lines of aliases of aliases ("billion laughs") expand
// to billions, and the engine ran out of memory reading them. The values
// written out in the file do not count (its size is bounded apart).
const MaxExpandedValues = 100_000

// expansionCap keeps the counts of a runaway expansion from overflowing.
const expansionCap = 1 << 50

// checkAliases refuses an alias inside the value it names (reading it
// never ended: the engine died of a stack overflow, at every start) and a
// file whose aliases expand past MaxExpandedValues.
func checkAliases(root *yaml.Node) *Error {
	size := map[*yaml.Node]int{} // values a node expands to, capped past the bound
	inside := map[*yaml.Node]bool{}
	var biggest *yaml.Node // the alias that expands the most
	var walk func(n *yaml.Node) (int, *Error)
	walk = func(n *yaml.Node) (int, *Error) {
		if n.Kind == yaml.AliasNode {
			if n.Alias == nil {
				return 1, nil
			}
			if inside[n.Alias] {
				return 0, &Error{Line: n.Line, Column: n.Column, Message: fmt.Sprintf("the alias *%s is inside the value &%s names, so it never ends; copy the values it needs instead", n.Value, n.Value)}
			}
			k, err := walk(n.Alias)
			if err == nil && (biggest == nil || k > size[biggest.Alias]) {
				biggest = n
			}
			return k, err
		}
		if k, done := size[n]; done {
			return k, nil
		}
		inside[n] = true
		defer delete(inside, n)
		total := 1
		for _, c := range n.Content {
			k, err := walk(c)
			if err != nil {
				return 0, err
			}
			total = min(total+k, expansionCap)
		}
		size[n] = total
		return total, nil
	}
	total, err := walk(root)
	if err != nil {
		return err
	}
	// size holds each value written out once: what is over that, aliases
	// added.
	if total-len(size) > MaxExpandedValues {
		at := root
		if biggest != nil {
			at = biggest
		}
		return &Error{Line: at.Line, Column: at.Column, Message: fmt.Sprintf("the aliases (*name) of this file add over %d values to it once expanded; repeat fewer, or write the values out", MaxExpandedValues)}
	}
	return nil
}

func syntaxError(err error, src []byte) *Error {
	line, msg := lineAndMessage(err)
	if line == 0 {
		line = 1
	}
	if strings.Contains(msg, "unexpected end of stream") {
		// A quote left open swallows the rest of the file, and the
		// message says only that the file ended: the user needs the line
		// and column the quote opens at.
		line = openQuoteLine(src, line, msg)
		if col, quote := quoteColumn(src, line); col > 0 {
			return &Error{Line: line, Column: col, Message: fmt.Sprintf("invalid YAML: the quoted value that starts here is never closed; add the closing %c where the value ends", quote)}
		}
	} else {
		line = problemLine(src, line, msg)
	}
	// yaml.v3 words a tab in the indentation as a token or indentation
	// problem; a user needs to hear that tabs are the trouble.
	if col := indentTab(src, line); col > 0 {
		return &Error{Line: line, Column: col, Message: "invalid YAML: this line is indented with a tab; YAML indentation must use spaces, not tabs"}
	}
	switch {
	case strings.Contains(msg, "expected ',' or ']'") || strings.Contains(msg, "expected ',' or '}'"):
		msg += " (inside [ ] or { }, quote values that hold { } [ ] , or :, such as \"/users/{id}\"; check this line and the next)"
	case strings.Contains(msg, "mapping values are not allowed"):
		if col := secondColon(src, line); col > 0 {
			// expr: map(xs, {"k": #}) unquoted (a QA run): the hint to
			// check the indentation sent the user the wrong way.
			return &Error{Line: line, Column: col, Message: "invalid YAML: " + msg + ` (this value holds ": ", which YAML reads as another key: put the value in quotes, or write it on the next lines after >-)`}
		}
		msg += " (check the indentation and the colons on this line and the next)"
	case strings.Contains(msg, "did not find expected"):
		msg += " (check the indentation and the colons on this line and the next)"
	}
	return &Error{Line: line, Column: 1, Message: "invalid YAML: " + msg}
}

// lineOf is line (1-based) of src, without its line break; false when
// src has no such line.
func lineOf(src []byte, line int) ([]byte, bool) {
	lines := bytes.Split(src, []byte("\n"))
	if line < 1 || line > len(lines) {
		return nil, false
	}
	return lines[line-1], true
}

// secondColon returns the column (1-based) of a ": " inside the unquoted
// value of a "key: value" line (line is 1-based), or 0.
func secondColon(src []byte, line int) int {
	raw, ok := lineOf(src, line)
	if !ok {
		return 0
	}
	text := string(raw)
	first := strings.Index(text, ": ")
	if first < 0 {
		return 0
	}
	value := strings.TrimLeft(text[first+2:], " ")
	if value == "" || strings.ContainsRune("'\"|>[{", rune(value[0])) {
		return 0
	}
	at := strings.Index(value, ": ")
	if c := strings.Index(value, " #"); at < 0 || (c >= 0 && c < at) {
		return 0 // none, or only in a comment
	}
	return utf8.RuneCountInString(text[:len(text)-len(value)+at]) + 1
}

// quoteColumn returns the column (1-based) of the first quote on line
// that opens a value, after a "key:" or a "- ", and the quote; column 0
// when none does.
func quoteColumn(src []byte, line int) (int, byte) {
	text, ok := lineOf(src, line)
	if !ok {
		return 0, 0
	}
	for i, c := range text {
		if c != '"' && c != '\'' {
			continue
		}
		before := bytes.TrimRight(text[:i], " ")
		if len(before) == 0 || bytes.HasSuffix(before, []byte(":")) || bytes.HasSuffix(before, []byte("-")) ||
			bytes.HasSuffix(before, []byte("[")) || bytes.HasSuffix(before, []byte(",")) || bytes.HasSuffix(before, []byte("{")) {
			return i + 1, c
		}
	}
	return 0, 0
}

// indentTab returns the column of the first tab in the indentation of
// line (1-based), or 0 when the line is not indented with one.
func indentTab(src []byte, line int) int {
	text, ok := lineOf(src, line)
	if !ok {
		return 0
	}
	for i, c := range text {
		switch c {
		case '\t':
			return i + 1
		case ' ':
		default:
			return 0
		}
	}
	return 0
}

// lineAndMessage splits yaml.v3's "yaml: line N: message".
func lineAndMessage(err error) (line int, msg string) {
	msg = err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		if m[1] != "" {
			line, _ = strconv.Atoi(m[1])
		}
		msg = msg[len(m[0]):]
	}
	return line, msg
}

// openQuoteLine finds the line a quote left open starts on. yaml.v3
// names it (reported), but for a quote on line 1, whose line it takes
// for none, it names the end of the file instead: so when it names the
// last line (or past it), one parse of the file without its last line
// tells the two apart. Halving the file, or parsing it from the end a
// line at a time, took seconds for a few thousand lines (a review).
func openQuoteLine(src []byte, reported int, msg string) int {
	lines := bytes.SplitAfter(src, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	last := len(lines)
	switch {
	case reported <= 1:
		return 1
	case reported < last:
		return reported
	case reported > last || failsWith(bytes.Join(lines[:last-1], nil), msg):
		return 1
	}
	return last
}

// failsWith reports whether src fails to parse with msg.
func failsWith(src []byte, msg string) bool {
	var doc yaml.Node
	err := yaml.Unmarshal(src, &doc)
	if err == nil {
		return false
	}
	_, m := lineAndMessage(err)
	return m == msg
}

// problemLine finds the line a syntax error is on. yaml.v3 gives the line
// where the enclosing mapping or list starts, which can be far above the
// mistake. The mistake is on the last line of the shortest part of the
// file, from the top, that fails with the same message (a part cut inside
// a value that goes on over lines, a quoted string or a [ ] list, fails
// with another). Parts ending at or after the mistake all fail so, and
// those ending before it do not, so halving the range finds it in a few
// parses, however long the file.
func problemLine(src []byte, reported int, msg string) int {
	lines := bytes.SplitAfter(src, []byte("\n"))
	failsAlike := func(n int) bool { return failsWith(bytes.Join(lines[:n], nil), msg) }
	lo, hi := reported, len(lines) // the answer is in [lo, hi]
	if lo > hi || !failsAlike(hi) {
		return reported
	}
	for lo < hi {
		if mid := lo + (hi-lo)/2; failsAlike(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// Path is a location inside a document: string keys and int indexes.
type Path []any

// Child returns p extended by one key or index, without sharing storage.
func (p Path) Child(k any) Path {
	out := make(Path, len(p), len(p)+1)
	copy(out, p)
	return append(out, k)
}

var plainKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

func (p Path) String() string {
	var b strings.Builder
	for i, k := range p {
		switch k := k.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", k)
		case string:
			if plainKeyRE.MatchString(k) {
				if i > 0 {
					b.WriteByte('.')
				}
				b.WriteString(k)
			} else {
				fmt.Fprintf(&b, "[%q]", k)
			}
		}
	}
	return b.String()
}

// Resolve follows aliases so callers never see an AliasNode.
func Resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// Lookup returns the value node at path and whether it exists. When it does
// not, it returns the deepest node that does, so a "missing key" can point
// at the mapping that lacks it.
func (d *Doc) Lookup(path Path) (*yaml.Node, bool) {
	n := Resolve(d.Root)
	for _, k := range path {
		next := child(n, k)
		if next == nil {
			return n, false
		}
		n = next
	}
	return n, true
}

// KeyNode returns the key node of the last element of path, for problems
// that concern the key itself (an unknown key, say).
func (d *Doc) KeyNode(path Path) *yaml.Node {
	if len(path) == 0 {
		return d.Root
	}
	name, isKey := path[len(path)-1].(string)
	if !isKey { // an index: the element is its own "key"
		n, _ := d.Lookup(path)
		return n
	}
	parent, ok := d.Lookup(path[:len(path)-1])
	if !ok || parent.Kind != yaml.MappingNode {
		return parent
	}
	for i := 0; i+1 < len(parent.Content); i += 2 {
		if parent.Content[i].Value == name {
			return parent.Content[i]
		}
	}
	return parent
}

func child(n *yaml.Node, k any) *yaml.Node {
	n = Resolve(n)
	if n == nil {
		return nil
	}
	switch k := k.(type) {
	case string:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				return Resolve(n.Content[i+1])
			}
		}
	case int:
		if n.Kind == yaml.SequenceNode && k >= 0 && k < len(n.Content) {
			return Resolve(n.Content[k])
		}
	}
	return nil
}

// ToValue converts a node into plain Go values as encoding/json would give
// them (map[string]any, []any, string, json.Number, bool, nil), which is
// what the JSON Schema validator expects.
func ToValue(n *yaml.Node) any {
	n = Resolve(n)
	if n == nil {
		return nil
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return ToValue(n.Content[0])
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Tag == "!!merge" {
				// <<: *a or <<: [*a, *b]; earlier maps and own keys win
				sources := []any{ToValue(v)}
				if list, ok := sources[0].([]any); ok {
					sources = list
				}
				for _, src := range sources {
					merged, _ := src.(map[string]any)
					for mk, mv := range merged {
						if _, set := m[mk]; !set {
							m[mk] = mv
						}
					}
				}
				continue
			}
			m[k.Value] = ToValue(v)
		}
		return m
	case yaml.SequenceNode:
		s := make([]any, len(n.Content))
		for i, c := range n.Content {
			s[i] = ToValue(c)
		}
		return s
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil
		case "!!bool":
			var b bool
			_ = n.Decode(&b)
			return b
		case "!!int", "!!float":
			var f any
			_ = n.Decode(&f)
			switch f := f.(type) {
			case int:
				return json.Number(strconv.Itoa(f))
			case int64:
				return json.Number(strconv.FormatInt(f, 10))
			case uint64:
				return json.Number(strconv.FormatUint(f, 10))
			case float64:
				if math.IsInf(f, 0) || math.IsNaN(f) {
					return n.Value // JSON has no such number; the schema sees text
				}
				return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
			}
			return n.Value
		default:
			return n.Value
		}
	}
	return nil
}

// OffsetPos returns the file position of byte offset off inside the value
// of scalar node n. Block scalars and single-line scalars map exactly; for
// a scalar whose value was changed on the way (escapes, folding, secrets
// resolved), positions past the first change fall back to the nearest
// position known.
func (d *Doc) OffsetPos(n *yaml.Node, off int) (line, col int) {
	n = Resolve(n)
	if n == nil {
		return 0, 0
	}
	if n.Kind != yaml.ScalarNode {
		return n.Line, n.Column
	}
	lines := bytes.Split(d.Src, []byte("\n"))
	if n.Line < 1 || n.Line > len(lines) {
		return n.Line, n.Column
	}
	value := n.Value
	if off > len(value) {
		off = len(value)
	}
	if n.Style == yaml.LiteralStyle || n.Style == yaml.FoldedStyle {
		// The content starts on the line after the indicator; its
		// indentation is that of the first non-empty content line.
		first := n.Line + 1
		for first <= len(lines) && len(bytes.TrimSpace(lines[first-1])) == 0 {
			first++
		}
		indent := firstNonSpace(lines, first) - 1
		return walk(lines, value, off, first, indent, func(int) int { return indent })
	}
	// yaml.v3 counts columns in characters; the walk goes by bytes.
	start := byteIndex(lines[n.Line-1], n.Column-1)
	if n.Style == yaml.DoubleQuotedStyle || n.Style == yaml.SingleQuotedStyle {
		start++
	}
	return walk(lines, value, off, n.Line, start, func(line int) int { return firstNonSpace(lines, line) - 1 })
}

// walk steps through the source (from byte bi of line) and the value
// together; a line end in the source stands for a newline or a space in
// the value (folding), and the next line starts at byte cont(line). It
// stops where the two differ, and returns a 1-based line and character
// column.
func walk(lines [][]byte, value string, off, line, bi int, cont func(line int) int) (int, int) {
	vi := 0
	for vi < off && line <= len(lines) {
		text := lines[line-1]
		if bi >= len(text) {
			line++
			bi = cont(line)
			if value[vi] == ' ' || value[vi] == '\n' {
				vi++
			}
			continue
		}
		if text[bi] != value[vi] {
			break
		}
		bi++
		vi++
	}
	if line > len(lines) {
		return line, bi + 1
	}
	text := lines[line-1]
	return line, utf8.RuneCount(text[:min(bi, len(text))]) + 1
}

// byteIndex returns the byte offset of the character at 0-based column col.
func byteIndex(text []byte, col int) int {
	i := 0
	for ; col > 0 && i < len(text); col-- {
		_, size := utf8.DecodeRune(text[i:])
		i += size
	}
	return i
}

func firstNonSpace(lines [][]byte, line int) int {
	if line < 1 || line > len(lines) {
		return 1
	}
	text := lines[line-1]
	for i, c := range text {
		if c != ' ' && c != '\t' {
			return i + 1
		}
	}
	return len(text) + 1
}
