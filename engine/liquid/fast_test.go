package liquid

import (
	"fmt"
	"reflect"
	"testing"
)

// The fast path (plain lookups, and filters called without reflection)
// must give what osteele gives, value for value and error for error.
// Every template is rendered both ways, as text and as a typed value,
// over inputs of every scalar kind.
func TestFastPathMatchesOsteele(t *testing.T) {
	templates := []string{
		"{{ v }}", "x {{ v }} y {{ w }}", "{{ obj.v }}", "{{ missing.deep.v }}",
		"{{ v | default: 'none' }}", "{{ v | default: 7 }}", "{{ v | default: w }}",
		"{{ v | default: 2592000 | plus: 0 }}", "{{ v | plus: 1 }}", "{{ v | minus: w }}",
		"{{ v | times: 3 }}", "{{ v | divided_by: 2 }}", "{{ v | divided_by: 0 }}", "{{ v | modulo: 3 }}",
		"{{ v | upcase }}", "{{ v | downcase | strip }}", "{{ v | capitalize }}",
		"{{ v | append: '-x' | prepend: \"y-\" }}", "{{ v | append: w }}", "{{ v | replace: 'a', 'b' }}",
		"{{ v | remove: 'a' }}", "{{ v | truncate: 3 }}", "{{ v | truncate: 3, '' }}",
		"{{ v | size }}", "{{ v | split: ',' }}", "{{ v | json }}", "{{ v | url_escape }}", "{{ v | hmac_sha256: 'k' }}", "{{ v | hmac_sha1_base64: w }}",
		"{{ v | md5 }}", "{{ v | number_with_delimiter }}", "{{ v | money }}",
		"{{ v | default }}", // a wrong argument count is refused when the template is built
		"{{ v | abs }}", "{{ v | ceil }}", "{{ v | round: 1 }}",
		"a{{ v | default: 'b' }}c{{ w | upcase }}d",
	}
	inputs := []any{nil, "", "abc", " Mixed Case ", "a,b", "10", "2.5", 0, 5, -3, int64(12), 2.5, -0.5, true, false, 1234567}
	e := NewEngine()
	for _, src := range templates {
		for _, typed := range []bool{false, true} {
			tmpl, problems := e.Parse(src, Options{Typed: typed})
			if problems != nil {
				t.Fatalf("%s: %v", src, problems)
			}
			slow := *tmpl
			slow.fast = nil
			for _, v := range inputs {
				for _, w := range []any{nil, "s", 3, 1.5} {
					vars := map[string]any{"v": v, "w": w, "obj": map[string]any{"v": v}}
					var got, want any
					var gotErr, wantErr error
					if typed {
						got, gotErr = tmpl.Value(vars)
						want, wantErr = slow.Value(vars)
					} else {
						got, gotErr = tmpl.Render(vars)
						want, wantErr = slow.Render(vars)
					}
					if !reflect.DeepEqual(got, want) || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
						t.Errorf("%s (typed %v) with v=%#v w=%#v:\nfast %#v, %v\nosteele %#v, %v", src, typed, v, w, got, gotErr, want, wantErr)
					}
				}
			}
		}
	}
}

// The fast path takes the filters pipelines use most, and leaves what it
// cannot read to osteele.
func TestFastPlanCoverage(t *testing.T) {
	e := NewEngine()
	for src, fast := range map[string]bool{
		"{{ event.tag | default: 'braze_segment_export' }}": true,
		"{{ event.ttl | default: 2592000 | plus: 0 }}":      true,
		"id {{ event.user.id | upcase }} at {{ event.at }}": true,
		"{{ v | replace: 'a', w.x }}":                       true,
		"{{ true }}":                                        false, // a keyword, not a variable
		"{{ v | plus: -1 }}":                                false,
		"{{ v | plus: 1.5 }}":                               false,
		"{{ v | append: \"it's\" }}":                        false,
		"{{ v | time_zone: 'UTC' }}":                        false, // osteele's typed signature
		"{{ v.size | plus: 1 }}":                            false,
		"{{ v | plus: 1 }}{% if v %}x{% endif %}":           false,
		"{{- v | upcase }}":                                 false,
	} {
		tmpl, problems := e.Parse(src, Options{})
		if problems != nil {
			t.Fatalf("%s: %v", src, problems)
		}
		if got := tmpl.fast != nil; got != fast {
			t.Errorf("%s: fast plan %v, want %v", src, got, fast)
		}
	}
}

// {{ true }} used to go through the fast path as a variable named true
// and print nothing.
func TestKeywordsAreNotVariables(t *testing.T) {
	e := NewEngine()
	for src, want := range map[string]string{"{{ true }}": "true", "{{ false }}": "false", "{{ nil }}": "", "{{ v | default: true }}": "true"} {
		tmpl, problems := e.Parse(src, Options{})
		if problems != nil {
			t.Fatalf("%s: %v", src, problems)
		}
		if got, err := tmpl.Render(map[string]any{}); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", src, got, err, want)
		}
	}
}
