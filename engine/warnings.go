package engine

import (
	"fmt"
	"strings"

	"github.com/loyalty-connector/engine/engine/diag"
	"github.com/loyalty-connector/engine/engine/spec"
)

// OpenRouteWarning is what engine run says of a route that takes no auth.
// validate says it as a note, since a route behind a proxy that checks
// every caller is no mistake.
const OpenRouteWarning = "this route has no auth: anyone who reaches the listener can call it; add source.auth (bearer, basic or hmac), unless a proxy in front checks every caller"

// OpenRoute tells whether anyone who reaches the listener can call p.
func (p *Pipeline) OpenRoute() bool {
	return p.Source.Type.Kind == spec.HTTPSource && p.Source.Auth == nil
}

// Warning is something in the files that builds but may not do what its
// writer means.
type Warning struct {
	// Pipeline is the pipeline whose file it is in; "" for a file that
	// defines none (connections.yaml, a folder).
	Pipeline string
	Text     string
}

// Warnings lists the load's warnings, a route without auth among them
// (mask hides a secret in a route's path, which makes it a capability
// URL).
func (proj *Project) Warnings(mask func(string) string) []Warning {
	var out []Warning
	for _, d := range proj.Diagnostics.Items() {
		if d.Severity != diag.Warning {
			continue
		}
		out = append(out, Warning{Pipeline: proj.PipelineOfFile(d.File), Text: d.String()})
	}
	for _, p := range proj.Pipelines {
		if p.OpenRoute() {
			out = append(out, Warning{Pipeline: p.Name, Text: fmt.Sprintf("%s: warning: %s %s: %s",
				p.File, p.Source.Method, mask(strings.Join(p.Source.Paths, " | ")), OpenRouteWarning)})
		}
	}
	return out
}
