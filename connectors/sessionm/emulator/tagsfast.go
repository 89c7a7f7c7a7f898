package emulator

import "unicode/utf8"

// parseTagsFast reads the body every tagging client sends,
// {"tags":["a",...],"ttl":n} (either key may come first, ttl may be
// left out), without encoding/json, which was a tenth of the sandbox's
// CPU under load. ok is false for anything else (other keys, escapes,
// null, a number that is not a plain positive integer, a problem to
// report), and parseTags then does the full validation.
func parseTagsFast(body []byte) (tags []string, ttl int64, ok bool) {
	s := tagScanner{b: body}
	s.space()
	if !s.take('{') {
		return nil, 0, false
	}
	seenTags, seenTTL := false, false
	for first := true; ; first = false {
		s.space()
		if s.take('}') {
			break
		}
		if !first && !(s.take(',') && s.spaceThen()) {
			return nil, 0, false
		}
		key, ok := s.str()
		if !ok || !s.spaceThen() || !s.take(':') || !s.spaceThen() {
			return nil, 0, false
		}
		switch {
		case key == "tags" && !seenTags:
			seenTags = true
			if tags, ok = s.names(); !ok {
				return nil, 0, false
			}
		case key == "ttl" && !seenTTL:
			seenTTL = true
			if ttl, ok = s.positive(); !ok {
				return nil, 0, false
			}
		default:
			return nil, 0, false
		}
	}
	s.space()
	if !seenTags || s.i != len(s.b) {
		return nil, 0, false
	}
	return tags, ttl, true
}

type tagScanner struct {
	b []byte
	i int
}

func (s *tagScanner) space() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

// spaceThen skips white space; it always holds, so it chains in conditions.
func (s *tagScanner) spaceThen() bool { s.space(); return true }

func (s *tagScanner) take(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str reads a non-empty string with no escapes, control characters or
// invalid UTF-8.
func (s *tagScanner) str() (string, bool) {
	if !s.take('"') {
		return "", false
	}
	start := s.i
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			if len(v) == 0 || !utf8.Valid(v) {
				return "", false
			}
			return string(v), true
		case c == '\\' || c < 0x20:
			return "", false
		}
		s.i++
	}
	return "", false
}

func (s *tagScanner) names() ([]string, bool) {
	if !s.take('[') {
		return nil, false
	}
	var names []string
	for {
		s.space()
		name, ok := s.str()
		if !ok {
			return nil, false
		}
		names = append(names, name)
		s.space()
		if s.take(']') {
			return names, len(names) <= maxTagsPerCall
		}
		if !s.take(',') {
			return nil, false
		}
	}
}

// positive reads a JSON integer from 1 to maxTTL (no sign, no leading
// zero, no fraction or exponent).
func (s *tagScanner) positive() (int64, bool) {
	start := s.i
	var n int64
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		n = n*10 + int64(s.b[s.i]-'0')
		s.i++
		if n > maxTTL {
			return 0, false
		}
	}
	if s.i == start || s.b[start] == '0' {
		return 0, false
	}
	return n, true
}
