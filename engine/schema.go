package engine

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"gopkg.in/yaml.v3"

	"github.com/loyalty-connector/engine/engine/diag"
	"github.com/loyalty-connector/engine/engine/yamlpos"
	"github.com/loyalty-connector/engine/schemas"
)

// schemaSet holds the compiled schemas and their raw JSON, which is read
// back to name the keys a mapping allows.
type schemaSet struct {
	pipeline, connections       *jsonschema.Schema
	rawPipeline, rawConnections any
}

func loadSchemas() (*schemaSet, error) {
	s := &schemaSet{}
	var err error
	if s.pipeline, s.rawPipeline, err = compileSchema("pipeline.schema.json", schemas.Pipeline); err != nil {
		return nil, err
	}
	if s.connections, s.rawConnections, err = compileSchema("connections.schema.json", schemas.Connections); err != nil {
		return nil, err
	}
	return s, nil
}

func compileSchema(name string, src []byte) (*jsonschema.Schema, any, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(src))
	if err != nil {
		return nil, nil, fmt.Errorf("schema %s: %w", name, err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(name, doc); err != nil {
		return nil, nil, fmt.Errorf("schema %s: %w", name, err)
	}
	sch, err := c.Compile(name)
	if err != nil {
		return nil, nil, fmt.Errorf("schema %s: %w", name, err)
	}
	return sch, doc, nil
}

// validateSchema checks the document against a schema and reports every
// violation at the line and column of the value (or key) concerned.
func (fc *fileContext) validateSchema(sch *jsonschema.Schema, raw any) bool {
	err := sch.Validate(yamlpos.ToValue(fc.doc.Root))
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return true
	}
	for _, leaf := range leaves(ve) {
		fc.reportViolation(leaf, raw)
	}
	return false
}

// leaves returns the most specific errors of a validation error tree.
func leaves(e *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if _, isName := e.ErrorKind.(*kind.PropertyNames); isName || len(e.Causes) == 0 {
		return []*jsonschema.ValidationError{e}
	}
	var out []*jsonschema.ValidationError
	for _, c := range e.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}

// instancePath turns a JSON pointer's tokens into a document path, reading
// numbers as indexes where the document holds a sequence.
func (fc *fileContext) instancePath(tokens []string) yamlpos.Path {
	var p yamlpos.Path
	for _, t := range tokens {
		n, _ := fc.doc.Lookup(p)
		if n != nil && n.Kind == yaml.SequenceNode {
			if i, err := strconv.Atoi(t); err == nil {
				p = p.Child(i)
				continue
			}
		}
		p = p.Child(t)
	}
	return p
}

func (fc *fileContext) reportViolation(e *jsonschema.ValidationError, raw any) {
	path := fc.instancePath(e.InstanceLocation)
	if _, isType := e.ErrorKind.(*kind.Type); isType && fc.hasProblem(path) {
		return // said already, better: an unquoted {{ }} is "not a mapping"
	}
	switch k := e.ErrorKind.(type) {
	case *kind.PropertyNames:
		fc.errorAtKey(path.Child(k.Property), "the name %q must be lower-case letters, digits and _, starting with a letter", k.Property)
	case *kind.AdditionalProperties:
		allowed := propertyNames(schemaAt(raw, e.SchemaURL))
		for _, name := range k.Properties {
			msg := fmt.Sprintf("unknown key %q", name)
			if len(allowed) > 0 {
				msg += "; allowed here: " + strings.Join(allowed, ", ") + diag.Suggest(name, allowed)
			}
			if fc.pipeline && name == "rate_limit" && path.String() == "delivery" {
				// Limits are the account's, shared by its pipelines.
				msg += "; a rate limit belongs to the connection: set rate_limit on it in connections.yaml"
			}
			fc.errorAtKey(path.Child(name), "%s", msg)
		}
	case *kind.Required:
		for _, name := range k.Missing {
			fc.errorAt(path, "missing %q%s", name, describeProperty(raw, e.SchemaURL, name))
		}
	case *kind.Type:
		// How to write it, when the schema says (a duration given as a
		// bare number said only "must be a string", a QA run).
		how := ""
		if m, ok := schemaAt(raw, strings.TrimSuffix(e.SchemaURL, "/type")).(map[string]any); ok {
			if p, ok := m["pattern"].(string); ok {
				if _, after, found := strings.Cut(patternHint(p), "; "); found {
					how = "; " + after
				}
			}
		}
		fc.errorAt(path, "must be %s, not %s%s", joinOr(k.Want), article(k.Got), how)
	case *kind.Enum:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			want[i] = fmt.Sprint(w)
		}
		got := fmt.Sprint(k.Got)
		fc.errorAt(path, "%q is not one of: %s%s", got, strings.Join(want, ", "), diag.Suggest(got, want))
	case *kind.Pattern:
		fc.errorAt(path, "%q %s", k.Got, patternHint(k.Want))
	case *kind.FalseSchema:
		fc.errorAtKey(path, "%q does not apply here; remove it", path[len(path)-1])
	case *kind.MinProperties, *kind.MaxProperties:
		names := propertyNames(schemaAt(raw, e.SchemaURL))
		fc.errorAt(path, "give exactly one of: %s", strings.Join(names, ", "))
	case *kind.Minimum:
		fc.errorAt(path, "must be at least %s, not %s", k.Want.RatString(), k.Got.RatString())
	case *kind.Maximum:
		fc.errorAt(path, "must be at most %s, not %s", k.Want.RatString(), k.Got.RatString())
	case *kind.MinItems:
		fc.errorAt(path, "needs at least %d item(s), has %d", k.Want, k.Got)
	case *kind.MaxItems:
		fc.errorAt(path, "holds %d items; the most allowed is %d", k.Got, k.Want)
	case *kind.MinLength:
		fc.errorAt(path, "must be at least %d character(s) long", k.Want)
	case *kind.MaxLength:
		fc.errorAt(path, "must be at most %d character(s) long", k.Want)
	default:
		fc.errorAt(path, "%s", e.ErrorKind.LocalizedString(printer))
	}
}

// schemaAt returns the raw schema node a schema URL points at
// ("pipeline.schema.json#/$defs/source/additionalProperties").
func schemaAt(raw any, url string) any {
	_, frag, _ := strings.Cut(url, "#")
	cur := raw
	for _, tok := range strings.Split(strings.TrimPrefix(frag, "/"), "/") {
		if tok == "" {
			continue
		}
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			cur = c[tok]
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i >= len(c) {
				return nil
			}
			cur = c[i]
		default:
			return nil
		}
	}
	return cur
}

// propertyNames lists the properties a schema object names, sorted.
func propertyNames(s any) []string {
	m, _ := s.(map[string]any)
	props, _ := m["properties"].(map[string]any)
	names := make([]string, 0, len(props))
	for k := range props {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// describeProperty returns " (<first sentence of its description>)" for a
// property the schema documents, looking from the schema at url outwards,
// so a "missing" message says what the setting is for.
func describeProperty(raw any, url, name string) string {
	for {
		m, _ := schemaAt(raw, url).(map[string]any)
		props, _ := m["properties"].(map[string]any)
		if p, ok := props[name].(map[string]any); ok {
			if enum, ok := p["enum"].([]any); ok {
				// The values it takes; the description's first
				// sentence, about the first value, read as a hint to
				// write that one.
				values := make([]string, len(enum))
				for i, v := range enum {
					values[i] = fmt.Sprint(v)
				}
				return " (one of: " + strings.Join(values, ", ") + ")"
			}
			if d, ok := p["description"].(string); ok {
				return " (" + firstSentence(d) + ")"
			}
		}
		i := strings.LastIndexByte(url, '/')
		if i < 0 || !strings.Contains(url[:i], "#") {
			return ""
		}
		url = url[:i]
	}
}

var patternHints = map[string]string{
	// Durations are positive: the engine refuses 0s, so the schema does too.
	`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))*([0-9]*[1-9][0-9]*(\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)(ns|us|µs|ms|s|m|h)([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))*$`: "is not a positive duration; write it like 500ms, 10s, 5m or 1h30m",
	`^[^"\r\n]*$`: "cannot separate fields; use a character such as , ; | or a tab",
	`^\s*([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])?\s*$|\$\{`: "is not true or false; set it to true only for an emulator reached over plain HTTP on another host",
	`^/`:                           "must start with /",
	`^[a-z_][a-z0-9_]*$`:           "must be lower-case letters, digits and _ (it becomes a variable name)",
	`^[a-z][a-z0-9_]*$`:            "must be lower-case letters, digits and _, starting with a letter",
	`^[0-9]+ ?(B|KB|MB|KiB|MiB)?$`: "is not a size; write it like 256KB or 1MB",
	`^[0-9]*[1-9][0-9]*/([0-9]+(\.[0-9]+)?)?(ns|us|µs|ms|s|m|h)$`: rateLimitHint, // not 0 requests
}

func patternHint(pattern string) string {
	if h, ok := patternHints[pattern]; ok {
		return h
	}
	return "does not match the pattern " + pattern
}

func joinOr(words []string) string {
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = article(w)
	}
	return strings.Join(out, " or ")
}

func article(t string) string {
	switch t {
	case "null":
		return "empty (null)"
	case "object":
		return "a mapping"
	case "array":
		return "a list"
	}
	if t != "" && strings.IndexByte("aeiou", t[0]) >= 0 {
		return "an " + t
	}
	return "a " + t
}

var printer = message.NewPrinter(language.English)

// firstSentence is d up to its first full stop that ends a sentence: not
// the one of "e.g." or "i.e." (a hint cut at "e.g" read "(Scheme and
// host (and optional path prefix), e.g)", a QA run).
func firstSentence(d string) string {
	for from := 0; ; {
		i := strings.Index(d[from:], ". ")
		if i < 0 {
			return strings.TrimSuffix(d, ".")
		}
		end := from + i
		if !strings.HasSuffix(d[:end], "e.g") && !strings.HasSuffix(d[:end], "i.e") {
			return d[:end]
		}
		from = end + 2
	}
}
