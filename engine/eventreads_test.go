package engine

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/loyalty-connector/engine/engine/spec"
)

// What a pipeline reads of its events by name, and where it needs a field
// rather than allowing for it missing: a CSV file's header row is checked
// against it before a row is sent (a file without its header row sent
// nothing for its first row, and dead-lettered the others, a QA run).
func TestEventReads(t *testing.T) {
	conns, err := os.ReadFile(filepath.Join("..", "pipelines", ConnectionsFileName))
	if err != nil {
		t.Fatal(err)
	}
	target := func(body string) string {
		return "target:\n  connection: sessionm_core\n  endpoint: tags_by_external_id\n  params:\n    external_id: \"{{ event.user_id }}\"\n  body:\n" + body
	}
	need := func(name string, places ...string) spec.FieldNeed { return spec.FieldNeed{Name: name, Places: places} }
	for _, tc := range []struct {
		name, yaml string
		want       spec.EventReads
	}{
		{"the shipped F2 form: defaults are not needed",
			"filter: event.user_id != \"\"\n" + target("    tags: [\"{{ event.tag | default: 'x' }}\"]\n    ttl: \"{{ event.ttl | default: 2592000 | plus: 0 }}\"\n"),
			spec.EventReads{Fields: []string{"tag", "ttl", "user_id"}, Needed: []spec.FieldNeed{need("user_id", "filter", "target.params.external_id")}}},
		// A body's value may be missing on purpose, checked in ways the
		// builder does not follow ({% assign %} then {% if %}); a path
		// without its value goes elsewhere (a re-QA).
		{"a field a path takes without a default is needed, a body's is not",
			target("    tags: [\"{{ event.tag }}\"]\n"),
			spec.EventReads{Fields: []string{"tag", "user_id"}, Needed: []spec.FieldNeed{need("user_id", "target.params.external_id")}}},
		{"a path's field with a default is not needed",
			"target:\n  connection: sessionm_core\n  endpoint: tags_by_external_id\n  params:\n    external_id: \"{{ event.user_id | default: 'anonymous' }}\"\n  body:\n    tags: [x]\n",
			spec.EventReads{Fields: []string{"user_id"}}},
		{"a default after other filters",
			target("    tags: [\"{{ event.tag | strip | default: 'x' }}\"]\n"),
			spec.EventReads{Fields: []string{"tag", "user_id"}, Needed: []spec.FieldNeed{need("user_id", "target.params.external_id")}}},
		{"a field given as a filter's argument is read",
			target("    tags: [\"{{ 'x' | append: event.tag | default: 'y' }}\"]\n"),
			spec.EventReads{Fields: []string{"tag", "user_id"}, Needed: []spec.FieldNeed{need("user_id", "target.params.external_id")}}},
		{"a Liquid test allows for it in its template",
			target("    tags: [\"{% if event.tag %}{{ event.tag }}{% else %}x{% endif %}\"]\n"),
			spec.EventReads{Fields: []string{"tag", "user_id"}, Needed: []spec.FieldNeed{need("user_id", "target.params.external_id")}}},
		{"an expr comparison with nil, or ??, allows for it in its expression",
			"filter: event.ttl == nil || event.ttl matches '^[0-9]+$'\nsteps:\n  - name: tag\n    expr: event.tag ?? 'x'\n" + target("    tags: [\"{{ tag }}\"]\n"),
			spec.EventReads{Fields: []string{"tag", "ttl", "user_id"}, Needed: []spec.FieldNeed{need("user_id", "target.params.external_id")}}},
		{"needed in a path, named with every place that reads it so",
			"filter: event.user_id != \"\"\n" + target("    tags: [\"{{ event.user_id }}\"]\n"),
			spec.EventReads{Fields: []string{"user_id"}, Needed: []spec.FieldNeed{need("user_id", "filter", "target.params.external_id", "target.body.tags[0]")}}},
		// Checked in the path's own template, or by the filter: a file
		// without the column was refused whole (a re-QA).
		{"a default's own value is a fallback, not needed",
			"target:\n  connection: sessionm_core\n  endpoint: tags_by_external_id\n  params:\n    external_id: \"{{ event.user_id | default: event.email }}\"\n  body:\n    tags: [x]\n",
			spec.EventReads{Fields: []string{"email", "user_id"}}},
		{"a field assigned to a variable read as it is is needed",
			"target:\n  connection: sessionm_core\n  endpoint: tags_by_external_id\n  params:\n    external_id: '{% assign u = event.user_id %}{{ u }}'\n  body:\n    tags: [x]\n",
			spec.EventReads{Fields: []string{"user_id"}, Needed: []spec.FieldNeed{need("user_id", "target.params.external_id")}}},
		{"a field assigned to a variable the template tests is not",
			"target:\n  connection: sessionm_core\n  endpoint: tags_by_external_id\n  params:\n    external_id: '{% assign u = event.user_id %}{% if u %}{{ u }}{% else %}{{ event.email }}{% endif %}'\n  body:\n    tags: [x]\n",
			spec.EventReads{Fields: []string{"email", "user_id"}, Needed: []spec.FieldNeed{need("email", "target.params.external_id")}}},
		{"a Liquid test of the event for the field allows for it",
			"target:\n  connection: sessionm_core\n  endpoint: tags_by_external_id\n  params:\n    external_id: '{% if event contains \"user_id\" %}{{ event.user_id }}{% else %}{{ event.email }}{% endif %}'\n  body:\n    tags: [x]\n",
			spec.EventReads{Whole: true, Fields: []string{"email", "user_id"}, Needed: []spec.FieldNeed{need("email", "target.params.external_id")}}},
		{"a filter false without the field: an event without it makes no request",
			"filter: '\"email\" in event && event.user_id != nil'\n" + strings.Replace(target("    tags: [x]\n"), "{{ event.user_id }}", "{{ event.email }}-{{ event.user_id }}", 1),
			spec.EventReads{Whole: true, Fields: []string{"email", "user_id"}}},
		{"a filter true without it needs it still",
			"filter: '\"email\" in event || event.vip == \"y\"'\n" + strings.Replace(target("    tags: [x]\n"), "{{ event.user_id }}", "{{ event.email }}", 1),
			spec.EventReads{Whole: true, Fields: []string{"email", "vip"}, Needed: []spec.FieldNeed{need("email", "target.params.external_id")}}},
		{"the event as a whole",
			target("    tags: [\"{{ event | json }}\"]\n"),
			spec.EventReads{Whole: true, Fields: []string{"user_id"}, Needed: []spec.FieldNeed{need("user_id", "target.params.external_id")}}},
		{"a field by a name known per event",
			"steps:\n  - name: k\n    expr: \"'tag'\"\n  - name: tag\n    expr: event[k]\n" + target("    tags: [\"{{ tag }}\"]\n"),
			spec.EventReads{Whole: true, Fields: []string{"user_id"}, Needed: []spec.FieldNeed{need("user_id", "target.params.external_id")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, ConnectionsFileName), conns, 0o644); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, "p.yaml")
			src := "source:\n  type: csv\n  inbox: in\n" + tc.yaml
			if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			got := loadOne(t, file).EventReads
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v\nof\n%s", got, tc.want, src)
			}
		})
	}
}
