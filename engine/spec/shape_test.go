package spec

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// wantViolation is one expected violation: its exact path and substrings
// its message must contain.
type wantViolation struct {
	path     string
	contains []string
}

func recipientsShape() *Shape {
	return Object(map[string]*Shape{
		"campaign_id": String(),
		"recipients": Array(Object(map[string]*Shape{
			"external_user_id": String(),
			"user_alias": Object(map[string]*Shape{
				"alias_name":  String(),
				"alias_label": String(),
			}, "alias_name", "alias_label"),
		}), 0, 50),
	}, "campaign_id")
}

func tagsShape() *Shape {
	return Object(map[string]*Shape{
		"tags": Array(String(), 1, 0),
		"ttl":  Integer(),
	}, "tags")
}

func nRecipients(n int, last any) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = map[string]any{"external_user_id": fmt.Sprintf("u%d", i)}
	}
	if n > 0 && last != nil {
		out[n-1] = last
	}
	return out
}

func TestShapeValidate(t *testing.T) {
	tests := []struct {
		name  string
		shape *Shape
		value any
		want  []wantViolation
	}{
		{name: "string ok", shape: String(), value: "x"},
		{name: "string wanted, integer given", shape: String(), value: int64(5),
			want: []wantViolation{{"", []string{"must be a string, not an integer 5"}}}},
		{name: "number accepts float64 integer", shape: Number(), value: float64(3)},
		{name: "number accepts int64", shape: Number(), value: int64(3)},
		{name: "number accepts int", shape: Number(), value: 3},
		{name: "number accepts fraction", shape: Number(), value: 1.5},
		{name: "number rejects string", shape: Number(), value: "1.5",
			want: []wantViolation{{"", []string{`must be a number, not a string "1.5"`}}}},
		{name: "integer accepts int64", shape: Integer(), value: int64(2592000)},
		{name: "integer accepts whole float64", shape: Integer(), value: float64(20000)},
		{name: "integer rejects 1.5", shape: Integer(), value: 1.5,
			want: []wantViolation{{"", []string{"must be an integer, not a number 1.5"}}}},
		{name: "integer rejects negative fraction", shape: Integer(), value: -0.25,
			want: []wantViolation{{"", []string{"must be an integer", "-0.25"}}}},
		{name: "json.Number integer accepted as integer", shape: Integer(), value: json.Number("42")},
		{name: "json.Number integer accepted as number", shape: Number(), value: json.Number("42")},
		{name: "json.Number fraction accepted as number", shape: Number(), value: json.Number("1.5")},
		{name: "json.Number fraction rejected as integer", shape: Integer(), value: json.Number("1.5"),
			want: []wantViolation{{"", []string{"must be an integer, not a number 1.5"}}}},
		{name: "json.Number rejected as string", shape: String(), value: json.Number("7"),
			want: []wantViolation{{"", []string{"must be a string, not an integer 7"}}}},
		{name: "boolean rejects string", shape: Boolean(), value: "true",
			want: []wantViolation{{"", []string{`must be a boolean, not a string "true"`}}}},
		{name: "boolean ok", shape: Boolean(), value: false},
		{name: "null mentions a missing variable", shape: String(), value: nil,
			want: []wantViolation{{"", []string{"must be a string, not null", "is a variable missing?"}}}},
		{name: "object wanted, array given", shape: OpenObject(), value: []any{},
			want: []wantViolation{{"", []string{"must be an object, not an array"}}}},
		{name: "array wanted, object given", shape: Array(String(), 0, 0), value: map[string]any{},
			want: []wantViolation{{"", []string{"must be an array, not an object"}}}},
		{name: "any accepts null", shape: Any(), value: nil},
		{name: "any accepts object", shape: Any(), value: map[string]any{"x": 1}},
		{name: "nil shape accepts anything", shape: nil, value: "x"},
		{name: "required field present", shape: tagsShape(), value: map[string]any{"tags": []any{"vip"}, "ttl": int64(20000)}},
		{name: "required field missing", shape: tagsShape(), value: map[string]any{"ttl": int64(20000)},
			want: []wantViolation{{"", []string{`"tags" is required`}}}},
		{name: "unknown field with suggestion", shape: tagsShape(), value: map[string]any{"tags": []any{"a"}, "tll": int64(1)},
			want: []wantViolation{{"", []string{`unknown field "tll"`, "allowed: tags, ttl", `did you mean "ttl"?`}}}},
		{name: "unknown field far from any name has no suggestion", shape: tagsShape(), value: map[string]any{"tags": []any{"a"}, "zzzzzzzz": true},
			want: []wantViolation{{"", []string{`unknown field "zzzzzzzz"; allowed: tags, ttl`}}}},
		{name: "open object accepts any fields", shape: OpenObject(), value: map[string]any{"a": 1, "b": map[string]any{"c": []any{nil}}}},
		{name: "open object still needs an object", shape: OpenObject(), value: "x",
			want: []wantViolation{{"", []string{`must be an object, not a string "x"`}}}},
		{name: "field type mismatch has field path", shape: tagsShape(), value: map[string]any{"tags": []any{"a"}, "ttl": "30d"},
			want: []wantViolation{{"ttl", []string{`must be an integer, not a string "30d"`}}}},
		{name: "MinItems", shape: tagsShape(), value: map[string]any{"tags": []any{}},
			want: []wantViolation{{"tags", []string{"needs at least 1 item(s), has 0"}}}},
		{name: "MaxItems exact limit ok", shape: recipientsShape(), value: map[string]any{"campaign_id": "c", "recipients": nRecipients(50, nil)}},
		{name: "MaxItems exceeded, bad item path has index", shape: recipientsShape(),
			value: map[string]any{"campaign_id": "c", "recipients": nRecipients(51, map[string]any{"external_user_id": int64(7)})},
			want: []wantViolation{
				{"recipients", []string{"holds 51 items; the limit is 50"}},
				{"recipients[50].external_user_id", []string{"must be a string, not an integer 7"}},
			}},
		{name: "nested path, null from missing variable", shape: recipientsShape(),
			value: map[string]any{"campaign_id": "c", "recipients": []any{
				map[string]any{"user_alias": map[string]any{"alias_name": nil, "alias_label": "l"}},
			}},
			want: []wantViolation{{"recipients[0].user_alias.alias_name", []string{"must be a string, not null (is a variable missing?)"}}}},
		{name: "nested required", shape: recipientsShape(),
			value: map[string]any{"campaign_id": "c", "recipients": []any{
				map[string]any{"external_user_id": "u"},
				map[string]any{"user_alias": map[string]any{"alias_name": "n"}},
			}},
			want: []wantViolation{{"recipients[1].user_alias", []string{`"alias_label" is required`}}}},
		{name: "top-level array item path", shape: Array(Integer(), 0, 0), value: []any{int64(1), "x"},
			want: []wantViolation{{"[1]", []string{`must be an integer, not a string "x"`}}}},
		{name: "every violation is reported, keys in sorted order", shape: recipientsShape(),
			value: map[string]any{"recipients": "all", "broadcast": true},
			want: []wantViolation{
				{"", []string{`"campaign_id" is required`}},
				{"", []string{`unknown field "broadcast"`}},
				{"recipients", []string{"must be an array"}},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.shape.Validate(tt.value)
			if len(got) != len(tt.want) {
				t.Fatalf("Validate(%v) = %v, want %d violation(s)", tt.value, got, len(tt.want))
			}
			for i, w := range tt.want {
				if got[i].Path != w.path {
					t.Errorf("violation %d path = %q, want %q (%v)", i, got[i].Path, w.path, got[i])
				}
				for _, sub := range w.contains {
					if !strings.Contains(got[i].Message, sub) {
						t.Errorf("violation %d message = %q, want it to contain %q", i, got[i].Message, sub)
					}
				}
			}
		})
	}
}

func TestViolationString(t *testing.T) {
	tests := []struct {
		v    Violation
		want string
	}{
		{Violation{"", "must be an object"}, "must be an object"},
		{Violation{"recipients[0].email", "must be a string"}, "recipients[0].email: must be a string"},
	}
	for _, tt := range tests {
		if got := tt.v.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestShapeCheckPath(t *testing.T) {
	event := Object(map[string]*Shape{
		"user": Object(map[string]*Shape{
			"email":       String(),
			"external_id": String(),
		}),
		"points":     Integer(),
		"tags":       Array(String(), 0, 0),
		"properties": OpenObject(),
		"anything":   Any(),
		"empty":      Object(nil),
	})
	tests := []struct {
		name string
		s    *Shape
		path []string
		want string
	}{
		{"empty path", event, nil, ""},
		{"known nested field", event, []string{"user", "email"}, ""},
		{"closed object unknown field with suggestion", event, []string{"user", "emaol"},
			`event.user has no field "emaol"; it has email, external_id; did you mean "email"?`},
		{"closed object unknown field, no close name", event, []string{"zzzzzzzz"},
			`event has no field "zzzzzzzz"; it has anything, empty, points, properties, tags, user`},
		{"object without fields", event, []string{"empty", "x"}, `event.empty has no fields, so "x" does not exist`},
		{"open object allows any depth", event, []string{"properties", "a", "b"}, ""},
		{"Any allows any depth", event, []string{"anything", "a", "b"}, ""},
		{"nil shape allows anything", nil, []string{"a"}, ""},
		{"scalar .size allowed", event, []string{"user", "email", "size"}, ""},
		{"scalar .first allowed", event, []string{"user", "email", "first"}, ""},
		{"array .size allowed", event, []string{"tags", "size"}, ""},
		{"array .last allowed", event, []string{"tags", "last"}, ""},
		{"scalar has no field", event, []string{"user", "email", "domain"}, `event.user.email is a string, it has no field "domain"`},
		{"integer article", event, []string{"points", "x"}, `event.points is an integer, it has no field "x"`},
		{"array has no field", event, []string{"tags", "x"}, `event.tags is an array, it has no field "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.CheckPath("event", tt.path); got != tt.want {
				t.Errorf("CheckPath(event, %v) = %q, want %q", tt.path, got, tt.want)
			}
		})
	}
}

func TestShapeField(t *testing.T) {
	tags := tagsShape()
	tests := []struct {
		name      string
		s         *Shape
		field     string
		wantShape *Shape
		wantMsg   string
	}{
		{"known field", tags, "ttl", tags.Fields["ttl"], ""},
		{"unknown field with suggestion", tags, "tag", nil, `body has no field "tag"; allowed: tags, ttl; did you mean "tags"?`},
		{"unknown field without suggestion", tags, "zzzzzzzz", nil, `body has no field "zzzzzzzz"; allowed: tags, ttl`},
		{"open object allows any", OpenObject(), "x", nil, ""},
		{"Any allows any", Any(), "x", nil, ""},
		{"nil shape allows any", nil, "x", nil, ""},
		{"array is not checked", Array(String(), 0, 0), "x", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, msg := tt.s.Field("body", tt.field)
			if got != tt.wantShape {
				t.Errorf("Field(body, %q) shape = %+v, want %+v", tt.field, got, tt.wantShape)
			}
			if msg != tt.wantMsg {
				t.Errorf("Field(body, %q) message = %q, want %q", tt.field, msg, tt.wantMsg)
			}
		})
	}
}

func TestShapeElem(t *testing.T) {
	items := String()
	tests := []struct {
		name string
		s    *Shape
		want *Shape
	}{
		{"array", Array(items, 0, 0), items},
		{"object", OpenObject(), nil},
		{"scalar", String(), nil},
		{"any", Any(), nil},
		{"nil", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.Elem(); got != tt.want {
				t.Errorf("Elem() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestShapeClone(t *testing.T) {
	orig := recipientsShape()
	c := orig.Clone()
	c.Fields["extra"] = String()
	c.Required = append(c.Required, "extra")
	c.Fields["recipients"].Items.Fields["email"] = String()
	c.Fields["recipients"].MaxItems = 1

	if _, ok := orig.Fields["extra"]; ok {
		t.Error("adding a field to the clone changed the original")
	}
	if len(orig.Required) != 1 {
		t.Errorf("original Required = %v, want [campaign_id]", orig.Required)
	}
	if _, ok := orig.Fields["recipients"].Items.Fields["email"]; ok {
		t.Error("adding a nested field to the clone changed the original")
	}
	if orig.Fields["recipients"].MaxItems != 50 {
		t.Errorf("original MaxItems = %d, want 50", orig.Fields["recipients"].MaxItems)
	}
	if (*Shape)(nil).Clone() != nil {
		t.Error("nil.Clone() != nil")
	}
}

// A CSV row's columns are the event's: row.user_id says where to read it
// (a QA run).
func TestCheckPathOfARowNamesTheEvent(t *testing.T) {
	row := Object(map[string]*Shape{"file": String(), "number": Integer()})
	want := `row has no field "user_id"; it has file, number; a CSV row's columns are read as event.user_id`
	if got := row.CheckPath("row", []string{"user_id"}); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
