package liquid

import (
	"fmt"
	"regexp"
	"strings"
)

// Liquid 5 added markup the osteele scanner cannot read: {% liquid %}
// (one tag per line, without delimiters), inline comments ({% # ... %},
// whose name is not a word), {% doc %} and nested {% comment %} blocks
// whose text must not be parsed at all, and {% echo %}. expandLiquid5
// rewrites these into markup osteele reads before the Braze pre-pass runs,
// and keeps an offset map so that problems still point at the user's text:
//
//   - {% liquid a\n b %} becomes {% a %}{% b %} (echo lines become {{ }});
//   - comments, inline comments and docs become an empty
//     {% comment %}{% endcomment %} that keeps the trim markers;
//   - {% echo x %} becomes {{ x }}.

// emptyComment renders nothing and keeps the trim markers of what it
// replaces, so whitespace control works as written.
func emptyComment(trimLeft, trimRight bool) string {
	s := "{% comment %}{% endcomment %}"
	if trimLeft {
		s = "{%-" + s[2:]
	}
	if trimRight {
		s = s[:len(s)-2] + "-%}"
	}
	return s
}

var (
	endDocRE   = regexp.MustCompile(`\{%-?\s*enddoc\s*-?%\}`)
	blockTagRE = regexp.MustCompile(`\{%-?\s*(\w+)[^%]*?-?%\}`)
	docRE      = regexp.MustCompile(`\{%-?\s*doc\b`)
)

type expander struct {
	src      string
	out      strings.Builder
	offsets  offsetMap
	problems []Problem
}

// expandLiquid5 rewrites the Liquid 5 markup of src (see above).
func expandLiquid5(src string) (string, offsetMap, []Problem) {
	if !strings.Contains(src, "{%") {
		return src, offsetMap{}, nil
	}
	x := &expander{src: src}
	i := 0
	for i < len(src) {
		j := strings.Index(src[i:], "{%")
		if j < 0 {
			x.copy(i, len(src))
			break
		}
		open := i + j
		x.copy(i, open)
		inner := open + 2
		trimLeft := inner < len(src) && src[inner] == '-'
		if trimLeft {
			inner++
		}
		body := strings.TrimLeft(src[inner:], " \t\r\n")
		if strings.HasPrefix(body, "#") {
			// an inline comment ends at the first %}, quotes or not
			end := strings.Index(src[inner:], "%}")
			if end < 0 {
				x.copy(open, len(src))
				break
			}
			end += inner
			content := src[inner:end]
			trimRight := strings.HasSuffix(content, "-")
			for _, line := range strings.Split(strings.TrimSuffix(content, "-"), "\n") {
				if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
					x.problems = append(x.problems, Problem{open, "every line of an inline comment must start with #; close the tag or add #"})
					break
				}
			}
			x.emit(open, emptyComment(trimLeft, trimRight))
			i = end + 2
			continue
		}
		end := findClose(src, inner, "%}", true)
		if end < 0 {
			x.copy(open, len(src))
			break
		}
		content := src[inner:end]
		trimRight := strings.HasSuffix(content, "-")
		if trimRight {
			content = content[:len(content)-1]
		}
		name := tagName(content)
		args := strings.TrimSpace(strings.TrimPrefix(strings.TrimLeft(content, " \t\r\n"), name))
		switch name {
		case "raw":
			stop := findEndBlock(src, end+2, "raw")
			if stop < 0 {
				stop = len(src)
			}
			x.copy(open, stop)
			i = stop
			continue
		case "comment":
			stop, closeTrim, ok := endOfComment(src, end+2)
			if !ok {
				// the pre-pass reports the missing {% endcomment %}
				x.copy(open, len(src))
				i = len(src)
				continue
			}
			x.emit(open, emptyComment(trimLeft, closeTrim))
			i = stop
			continue
		case "doc":
			if args != "" {
				x.problems = append(x.problems, Problem{open, "{% doc %} takes no arguments; write {% doc %}"})
			}
			loc := endDocRE.FindStringIndex(src[end+2:])
			if loc != nil && docRE.MatchString(src[end+2:end+2+loc[0]]) {
				x.problems = append(x.problems, Problem{open, "{% doc %} blocks cannot be nested; remove the inner {% doc %}"})
			}
			if loc == nil {
				x.problems = append(x.problems, Problem{open, "{% doc %} is not closed; add {% enddoc %}"})
				x.copy(open, len(src))
				i = len(src)
				continue
			}
			closer := src[end+2+loc[0] : end+2+loc[1]]
			x.emit(open, emptyComment(trimLeft, strings.HasSuffix(closer, "-%}")))
			i = end + 2 + loc[1]
			continue
		case "echo":
			x.emit(open, echoObject(args, trimLeft, trimRight))
			i = end + 2
			continue
		case "liquid":
			argStart := inner + strings.Index(src[inner:end], "liquid") + len("liquid")
			argEnd := end
			if trimRight {
				argEnd--
			}
			x.emit(open, emptyComment(trimLeft, false))
			var unclosed []string
			x.liquidLines(src[argStart:argEnd], argStart, &unclosed)
			if n := len(unclosed); n > 0 {
				x.problems = append(x.problems, Problem{open, fmt.Sprintf("{%% %s %%} in this liquid tag is not closed; add end%s on a later line of the same tag", unclosed[n-1], unclosed[n-1])})
			}
			x.emit(end, emptyComment(false, trimRight))
			i = end + 2
			continue
		}
		x.copy(open, end+2)
		i = end + 2
	}
	return x.out.String(), x.offsets, x.problems
}

func (x *expander) copy(from, to int) {
	if to > from {
		x.offsets.mark(x.out.Len(), from)
		x.out.WriteString(x.src[from:to])
	}
}

// emit writes generated markup that stands for the source at in.
func (x *expander) emit(in int, s string) {
	x.offsets.mark(x.out.Len(), in)
	x.out.WriteString(s)
	// what follows is not a continuation of the source at in
	x.offsets.mark(x.out.Len(), in)
}

func echoObject(expr string, trimLeft, trimRight bool) string {
	if strings.TrimSpace(expr) == "" {
		expr = "nil"
	}
	s := "{{" + expr + "}}"
	if trimLeft {
		s = "{{-" + expr + "}}"
	}
	if trimRight {
		s = s[:len(s)-2] + "-}}"
	}
	return s
}

// liquidLines writes one tag per line of a {% liquid %} tag. base is the
// offset of body in the source; open tracks the blocks opened and not yet
// closed, since a liquid tag cannot close a block opened outside it.
func (x *expander) liquidLines(body string, base int, open *[]string) {
	inComment := 0
	at := 0
	for _, line := range strings.SplitAfter(body, "\n") {
		lineOff := base + at
		at += len(line)
		indent := len(line) - len(strings.TrimLeft(line, " \t\r\n"))
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name := line
		if k := strings.IndexAny(line, " \t"); k >= 0 {
			name = line[:k]
		}
		args := strings.TrimSpace(line[len(name):])
		if inComment > 0 {
			switch name {
			case "comment":
				inComment++
			case "endcomment":
				inComment--
			}
			continue
		}
		switch {
		case strings.HasPrefix(line, "#"):
		case name == "comment":
			inComment++
		case name == "echo":
			x.emit(lineOff, echoObject(args, false, false))
		case name == "liquid":
			x.liquidLines(args, lineOff+strings.Index(line, args), open)
		default:
			if blockTags[name] {
				*open = append(*open, name)
			} else if n := len(*open); strings.HasPrefix(name, "end") && blockTags[name[3:]] {
				if n == 0 || (*open)[n-1] != name[3:] {
					x.problems = append(x.problems, Problem{lineOff, fmt.Sprintf("{%% %s %%} in a liquid tag must close a block opened in the same tag", name)})
				} else {
					*open = (*open)[:n-1]
				}
			}
			// the tag's text maps to the line's, after its indentation
			x.emit(lineOff, "{% ")
			x.emit(lineOff+indent, line+" %}")
		}
	}
}

// endOfComment finds the end of a comment block whose body starts at from,
// counting nested comments and skipping raw blocks, as Liquid 5 does. It
// returns the offset past {% endcomment %} and whether that tag trims
// the white space after it.
func endOfComment(src string, from int) (int, bool, bool) {
	depth := 1
	for from < len(src) {
		loc := blockTagRE.FindStringSubmatchIndex(src[from:])
		if loc == nil {
			return 0, false, false
		}
		name := src[from+loc[2] : from+loc[3]]
		tagEnd := from + loc[1]
		switch name {
		case "raw":
			if stop := findEndBlock(src, tagEnd, "raw"); stop >= 0 {
				tagEnd = stop
			}
		case "comment":
			depth++
		case "endcomment":
			depth--
			if depth == 0 {
				return tagEnd, strings.HasSuffix(src[from+loc[0]:tagEnd], "-%}"), true
			}
		}
		from = tagEnd
	}
	return 0, false, false
}
