package yamlpos

import (
	"fmt"
	"regexp"
	"strings"
)

var (
	typeErrLineRE  = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	unknownFieldRE = regexp.MustCompile(`^field (\S+) not found in type`)
	cannotRE       = regexp.MustCompile("^cannot unmarshal !!(\\w+) (?:`(.*)` )?into (.+)$")
)

// TypeProblem rewords one message of a yaml.v3 TypeError for the person
// who wrote the file: "unknown key", or "expected a whole number, got text
// (lots)" rather than Go type names. line is the line yaml.v3 gave ("" if
// none).
func TypeProblem(msg string) (line, problem string) {
	line, msg = SplitLine(msg)
	if m := unknownFieldRE.FindStringSubmatch(msg); m != nil {
		return line, fmt.Sprintf("unknown key %q", m[1])
	}
	if m := cannotRE.FindStringSubmatch(msg); m != nil {
		got := map[string]string{"str": "text", "int": "a number", "float": "a number", "bool": "true/false", "map": "a mapping", "seq": "a list", "null": "nothing", "timestamp": "a date"}[m[1]]
		if got == "" {
			got = m[1]
		}
		if m[2] != "" {
			got += fmt.Sprintf(" (%s)", m[2])
		}
		return line, fmt.Sprintf("expected %s, got %s", kindOf(m[3]), got)
	}
	return line, msg
}

// SplitLine splits yaml.v3's "[yaml: ]line N: message" into N and the
// message; line is "" when msg names none.
func SplitLine(msg string) (line, rest string) {
	if m := typeErrLineRE.FindStringSubmatch(msg); m != nil {
		return m[1], m[2]
	}
	return "", msg
}

// kindOf names a Go target type the way the author of a file thinks of it.
func kindOf(goType string) string {
	switch {
	case goType == "time.Duration":
		return "a duration such as 2s or 300ms"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["), strings.HasPrefix(goType, "struct"), strings.Contains(goType, "."):
		return "a mapping" // a struct of the package decoding
	case strings.Contains(goType, "int"):
		return "a whole number"
	case strings.Contains(goType, "float"):
		return "a number"
	case strings.Contains(goType, "bool"):
		return "true or false"
	case strings.Contains(goType, "string"):
		return "text"
	}
	return "another kind of value"
}
