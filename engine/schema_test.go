package engine

import (
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/loyalty-connector/engine/connectors"
	"github.com/loyalty-connector/engine/engine/spec"
)

// The JSON Schemas in schemas/ and the Go types and connector catalogue
// must describe the same files: these tests fail when one changes alone.

func rawSchemas(t *testing.T) *schemaSet {
	t.Helper()
	s, err := loadSchemas()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// resolve follows $ref and merges the properties of allOf members, so a
// schema object can be compared with a Go struct.
func resolve(t *testing.T, root any, node any) map[string]any {
	t.Helper()
	m, ok := node.(map[string]any)
	if !ok {
		return nil
	}
	if ref, ok := m["$ref"].(string); ok {
		return resolve(t, root, schemaAt(root, ref))
	}
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	props := map[string]any{}
	if all, ok := m["allOf"].([]any); ok {
		for _, member := range all {
			for k, v := range resolve(t, root, member)["properties"].(map[string]any) {
				props[k] = v
			}
		}
	}
	if own, ok := m["properties"].(map[string]any); ok {
		for k, v := range own {
			if v != true || props[k] == nil {
				props[k] = v
			}
		}
	}
	if len(props) > 0 {
		out["properties"] = props
	}
	return out
}

// yamlFields lists a struct's YAML keys, inline structs flattened.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if opts == "inline" {
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		out[name] = f.Type
	}
	return out
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// compareType checks one Go type against one schema node, recursively.
func compareType(t *testing.T, root any, where string, typ reflect.Type, node any) {
	t.Helper()
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	s := resolve(t, root, node)
	switch {
	case typ == reflect.TypeOf(yaml.Node{}):
		if _, typed := s["type"]; typed {
			t.Errorf("%s: holds any YAML value in code, but the schema restricts its type to %v", where, s["type"])
		}
	case typ == reflect.TypeOf(StringList{}):
		if !reflect.DeepEqual(s["type"], []any{"string", "array"}) {
			t.Errorf("%s: is a string or a list in code, the schema says %v", where, s["type"])
		}
	case typ.Kind() == reflect.Struct:
		if s["type"] != "object" || s["additionalProperties"] != false {
			t.Errorf("%s: the schema must be a closed object (type object, additionalProperties false)", where)
		}
		fields := yamlFields(typ)
		props, _ := s["properties"].(map[string]any)
		if got, want := sortedNames(props), sortedNames(fields); !slices.Equal(got, want) {
			t.Errorf("%s: schema properties %v, Go fields %v", where, got, want)
		}
		for name, ft := range fields {
			if p, ok := props[name]; ok {
				compareType(t, root, where+"."+name, ft, p)
			}
		}
	case typ.Kind() == reflect.Slice:
		if s["type"] != "array" {
			t.Errorf("%s: a list in code, %v in the schema", where, s["type"])
			return
		}
		compareType(t, root, where+"[]", typ.Elem(), s["items"])
	case typ.Kind() == reflect.Map:
		if s["type"] != "object" {
			t.Errorf("%s: a mapping in code, %v in the schema", where, s["type"])
			return
		}
		compareType(t, root, where+".*", typ.Elem(), s["additionalProperties"])
	case typ.Kind() == reflect.String:
		// A YAML integer decodes into a string field as written (max_body:
		// 4096), so the schema may take one.
		if s["type"] != "string" && s["enum"] == nil && !reflect.DeepEqual(s["type"], []any{"string", "integer"}) {
			t.Errorf("%s: a string in code, %v in the schema", where, s["type"])
		}
	case typ.Kind() == reflect.Int:
		if s["type"] != "integer" {
			t.Errorf("%s: an integer in code, %v in the schema", where, s["type"])
		}
	default:
		t.Errorf("%s: no rule to compare Go kind %s", where, typ.Kind())
	}
}

func TestPipelineSchemaMatchesConfigTypes(t *testing.T) {
	s := rawSchemas(t)
	compareType(t, s.rawPipeline, "pipeline", reflect.TypeOf(PipelineConfig{}), s.rawPipeline)
}

func enumOf(t *testing.T, root any, url string) []string {
	t.Helper()
	node, _ := schemaAt(root, url).(map[string]any)
	var out []string
	list, _ := node["enum"].([]any)
	if list == nil {
		list, _ = node["examples"].([]any)
	}
	for _, v := range list {
		out = append(out, v.(string))
	}
	sort.Strings(out)
	return out
}

func TestSchemasMatchCatalog(t *testing.T) {
	s := rawSchemas(t)
	cat := connectors.Catalog()
	if got, want := enumOf(t, s.rawPipeline, "#/$defs/source/properties/type"), cat.SourceTypeNames(); !slices.Equal(got, want) {
		t.Errorf("source types: schema %v, catalogue %v", got, want)
	}
	if got, want := enumOf(t, s.rawConnections, "#/$defs/connection/properties/type"), cat.ConnectionTypeNames(); !slices.Equal(got, want) {
		t.Errorf("connection types: schema %v, catalogue %v", got, want)
	}
	var endpoints []string
	for _, ct := range cat.Connections {
		endpoints = append(endpoints, ct.EndpointNames()...)
	}
	sort.Strings(endpoints)
	if got := enumOf(t, s.rawPipeline, "#/$defs/callFields/properties/endpoint"); !slices.Equal(got, endpoints) {
		t.Errorf("endpoints: schema lists %v, catalogue has %v", got, endpoints)
	}
	methods := slices.Sorted(slices.Values(spec.Methods))
	for _, url := range []string{"#/$defs/source/properties/method", "#/$defs/callFields/properties/method"} {
		if got := enumOf(t, s.rawPipeline, url); !slices.Equal(got, methods) {
			t.Errorf("%s: schema %v, code %v", url, got, methods)
		}
	}
}

// Each connection type's "then" block lists exactly its fields (plus the
// common ones) and requires exactly its required fields.
func TestConnectionsSchemaMatchesCatalog(t *testing.T) {
	s := rawSchemas(t)
	conn := schemaAt(s.rawConnections, "#/$defs/connection").(map[string]any)
	seen := map[string]bool{}
	for _, member := range conn["allOf"].([]any) {
		m := member.(map[string]any)
		typeName := m["if"].(map[string]any)["properties"].(map[string]any)["type"].(map[string]any)["const"].(string)
		seen[typeName] = true
		ct, ok := connectors.Catalog().Connections[typeName]
		if !ok {
			t.Errorf("schema describes connection type %q, which no connector provides", typeName)
			continue
		}
		then := m["then"].(map[string]any)
		if then["additionalProperties"] != false {
			t.Errorf("%s: unknown settings must be refused", typeName)
		}
		want := slices.Clone(commonConnectionFields)
		var required []string
		for _, f := range ct.Fields {
			want = append(want, f.Name)
			if f.Required {
				required = append(required, f.Name)
			}
		}
		if got := sortedNames(then["properties"].(map[string]any)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
			t.Errorf("%s: schema settings %v, connector fields %v", typeName, got, slices.Sorted(slices.Values(want)))
		}
		var gotRequired []string
		for _, r := range asList(then["required"]) {
			gotRequired = append(gotRequired, r.(string))
		}
		slices.Sort(gotRequired)
		slices.Sort(required)
		if !slices.Equal(gotRequired, required) {
			t.Errorf("%s: schema requires %v, connector requires %v", typeName, gotRequired, required)
		}
	}
	for _, name := range connectors.Catalog().ConnectionTypeNames() {
		if !seen[name] {
			t.Errorf("connection type %q has no block in connections.schema.json", name)
		}
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func TestConnectionsSchemaMatchesConfigType(t *testing.T) {
	s := rawSchemas(t)
	top := resolve(t, s.rawConnections, s.rawConnections)
	fields := yamlFields(reflect.TypeOf(ConnectionsConfig{}))
	if got, want := sortedNames(top["properties"].(map[string]any)), sortedNames(fields); !slices.Equal(got, want) {
		t.Errorf("connections file: schema %v, Go %v", got, want)
	}
}

// Every pattern in the schemas has a sentence in patternHints, so no value
// that breaks one is answered with a regular expression.
func TestSchemaPatternsHaveHints(t *testing.T) {
	s := rawSchemas(t)
	var walk func(where string, node any)
	walk = func(where string, node any) {
		switch n := node.(type) {
		case map[string]any:
			if p, ok := n["pattern"].(string); ok {
				if _, ok := patternHints[p]; !ok {
					t.Errorf("%s: pattern %s has no entry in patternHints", where, p)
				}
			}
			for k, v := range n {
				walk(where+"/"+k, v)
			}
		case []any:
			for _, v := range n {
				walk(where, v)
			}
		}
	}
	walk("pipeline.schema.json#", s.rawPipeline)
	walk("connections.schema.json#", s.rawConnections)
}

// The schemas' duration pattern refuses every duration the engine
// refuses (one time.ParseDuration cannot read, or not more than zero), and
// takes the usual forms. Editors check files with the schema alone, so a
// 0s it let through would only fail at validate. It is stricter than Go on
// odd spellings (+1s, .5s), which it refuses in every command alike.
func TestSchemaDurationIsPositive(t *testing.T) {
	s := rawSchemas(t)
	for _, raw := range []any{s.rawPipeline, s.rawConnections} {
		pattern := regexp.MustCompile(schemaAt(raw, "#/$defs/duration").(map[string]any)["pattern"].(string))
		for _, v := range []string{"500ms", "10s", "1h30m", "0.5s", "0m30s", "1h0m0s", "0.01s", "10.0s", "2µs", "3us", "1ns", "007s"} {
			if !pattern.MatchString(v) {
				t.Errorf("%q refused", v)
			}
		}
		for _, v := range []string{"0s", "0.0s", "0h0m", "00ms", "0m0.000s", "", "s", "1", "1 s", "-1s", "1d", "forever", "1h 30m"} {
			if d, err := time.ParseDuration(v); err == nil && d > 0 {
				t.Fatalf("%q: the engine takes it; the list is of values it refuses", v)
			}
			if pattern.MatchString(v) {
				t.Errorf("%q taken", v)
			}
		}
		for _, v := range []string{"+1s", ".5s", "1.s"} { // odd spellings
			if pattern.MatchString(v) {
				t.Errorf("%q taken", v)
			}
		}
	}
}

// Values the engine refuses and the schemas refuse too, with the hint the
// engine would give.
func TestSchemaRefusesWhatTheEngineRefuses(t *testing.T) {
	s := rawSchemas(t)
	tests := []struct {
		raw       any
		at, value string
		want      string
	}{
		{s.rawPipeline, "#/$defs/source/properties/delimiter", `"`, "cannot separate fields"},
		{s.rawPipeline, "#/$defs/source/properties/delimiter", "\n", "cannot separate fields"},
		{s.rawConnections, "#/$defs/connection/properties/allow_plain_http", "yes", "is not true or false"},
		{s.rawConnections, "#/$defs/connection/properties/allow_plain_http", "on", "is not true or false"},
	}
	for _, tt := range tests {
		p := schemaAt(tt.raw, tt.at).(map[string]any)["pattern"].(string)
		if regexp.MustCompile(p).MatchString(tt.value) {
			t.Errorf("%s takes %q", tt.at, tt.value)
		}
		if !strings.Contains(patternHint(p), tt.want) {
			t.Errorf("%s: hint %q, want one with %q", tt.at, patternHint(p), tt.want)
		}
	}
	for _, ok := range []string{",", ";", "\t", "|"} {
		if p := schemaAt(s.rawPipeline, "#/$defs/source/properties/delimiter").(map[string]any)["pattern"].(string); !regexp.MustCompile(p).MatchString(ok) {
			t.Errorf("delimiter %q refused", ok)
		}
	}
	for _, ok := range []string{"true", "False", " TRUE ", "${env:PLAIN_HTTP}"} {
		if p := schemaAt(s.rawConnections, "#/$defs/connection/properties/allow_plain_http").(map[string]any)["pattern"].(string); !regexp.MustCompile(p).MatchString(ok) {
			t.Errorf("allow_plain_http %q refused", ok)
		}
	}
}

// A missing base_url is one problem, whose hint is the description's first
// sentence whole: cut at "e.g", it read "(Scheme and host (and optional
// path prefix), e.g)", and a second problem said "" is not a base URL (a
// QA run).
func TestMissingBaseURLIsOneProblemWithItsHint(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		ConnectionsFileName: "connections:\n  c:\n    type: http\n    base-url: https://x.example.com\n",
		"p.yaml":            "source: { type: http, path: /in }\ntarget: { connection: c, method: POST, path: /x, body: { a: 1 } }\n",
	})
	l, _ := testLoader(t)
	var got []string
	for _, d := range l.Load([]string{dir}).Diagnostics.Items() {
		if strings.Contains(d.String(), "base_url") {
			got = append(got, d.String())
		}
	}
	want := `connections.c: missing "base_url" (Scheme and host (and optional path prefix), e.g. https://rest.iad-01.braze.com)`
	if len(got) != 2 || !strings.Contains(got[0], want) || !strings.Contains(got[1], `unknown key "base-url"`) {
		t.Errorf("problems naming base_url:\n%s\nwant the missing one, with %q, and the unknown key", strings.Join(got, "\n"), want)
	}
}
