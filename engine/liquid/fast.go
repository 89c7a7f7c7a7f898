package liquid

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Most pipeline leaves are plain variable paths ("{{ event.user.id }}",
// "offer {{ event.offer.name }}"). Those are rendered here by direct map
// lookups, which gives the same output as the osteele renderer at a
// fraction of its cost; anything else (filters, tags, values that are not
// plain text, numbers or booleans) goes through osteele.

// fastSegment is literal text, or a variable path when path is set.
type fastSegment struct {
	text string
	path []string
}

var simplePathRE = regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*)\s*$`)

// fastPlan returns the segments of a template made only of text and
// simple-path objects, or nil.
func fastPlan(p prepared) []fastSegment {
	if strings.Contains(p.source, "{%") {
		return nil // tags, and raw or comment blocks, which are not regions
	}
	var segs []fastSegment
	at := 0
	for _, r := range p.regions {
		m := simplePathRE.FindStringSubmatch(r.content)
		if r.tag || m == nil {
			return nil
		}
		end := r.start + len(r.content)
		// trim markers change the text around; leave those to osteele
		if p.source[r.open+2] == '-' || p.source[end] == '-' {
			return nil
		}
		path := strings.Split(m[1], ".")
		for _, name := range path[1:] {
			if name == "size" || name == "first" || name == "last" {
				return nil // Liquid's computed properties
			}
		}
		if r.open > at {
			segs = append(segs, fastSegment{text: p.source[at:r.open]})
		}
		segs = append(segs, fastSegment{path: path})
		at = end + 2
	}
	if at < len(p.source) {
		segs = append(segs, fastSegment{text: p.source[at:]})
	}
	return segs
}

// lookup follows path through nested maps. ok is false when a value on
// the way is of a kind only osteele knows how to read.
func lookup(vars map[string]any, path []string) (v any, ok bool) {
	v = vars[path[0]]
	for _, name := range path[1:] {
		switch m := v.(type) {
		case map[string]any:
			v = m[name]
		case nil:
			return nil, true
		default:
			return nil, false
		}
	}
	return v, true
}

// appendText appends v as Liquid prints it; ok is false for values whose
// printing is left to osteele (arrays, maps, times, ...).
func appendText(b *strings.Builder, v any) bool {
	switch v := v.(type) {
	case nil:
	case string:
		b.WriteString(v)
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case int:
		b.WriteString(strconv.Itoa(v))
	case float64:
		b.WriteString(fmt.Sprint(v))
	case bool:
		b.WriteString(strconv.FormatBool(v))
	default:
		return false
	}
	return true
}

// renderFast renders a fast plan; ok is false when osteele must do it.
func renderFast(segs []fastSegment, vars map[string]any) (string, bool) {
	var b strings.Builder
	for _, s := range segs {
		if s.path == nil {
			b.WriteString(s.text)
			continue
		}
		v, ok := lookup(vars, s.path)
		if !ok || !appendText(&b, v) {
			return "", false
		}
	}
	return b.String(), true
}
