package liquid

import (
	"fmt"
	"strings"
	"testing"

	osteele "github.com/osteele/liquid"
)

// A 300-byte message template with five variables and a loop over ten
// items, rendered with this package and with plain osteele/liquid (the
// same template parsed once by each).
const benchTemplate = `Hi {{ first_name | capitalize }}, you have {{ points }} points at {{ brand }}.
{% for offer in offers %}{% if offer.active %}- {{ offer.name | upcase }}: {{ offer.value | times: 2 }} pts{% else %}- {{ offer.name }} (soon){% endif %}
{% endfor %}Tier: {% case tier %}{% when 'gold' %}Gold{% else %}Member{% endcase %}. Until {{ expires | date: "%d/%m/%Y" }}.`

func benchVars() map[string]any {
	offers := make([]any, 10)
	for i := range offers {
		offers[i] = map[string]any{"name": "offer", "active": i%2 == 0, "value": i * 10}
	}
	return map[string]any{"first_name": "ana", "points": 1250, "brand": "Acme", "tier": "gold", "expires": "2026-12-31", "offers": offers}
}

func BenchmarkRender300B(b *testing.B) {
	vars := benchVars()
	b.Run("engine", func(b *testing.B) {
		tpl, problems := NewEngine().Parse(benchTemplate, Options{})
		if len(problems) > 0 {
			b.Fatal(problems)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tpl.Render(vars); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("osteele", func(b *testing.B) {
		tpl, err := osteele.NewEngine().ParseString(benchTemplate)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tpl.RenderString(vars); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkParseLongTemplate parses messages of 1,000 and 8,000 lines with
// a {{ }} each: the time per line should stay flat (a search from every
// markup to the end for an HTML comment made it grow with the length).
func BenchmarkParseLongTemplate(b *testing.B) {
	for _, lines := range []int{1000, 8000} {
		src := strings.Repeat("<p>Hello {{ first_name | default: 'friend' }}</p>\n", lines) + "<!-- end -->"
		b.Run(fmt.Sprintf("%d lines", lines), func(b *testing.B) {
			for b.Loop() {
				if _, problems := NewEngine().Parse(src, Options{}); len(problems) > 0 {
					b.Fatal(problems)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(lines), "µs/line")
		})
	}
}
