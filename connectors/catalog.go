// Package connectors assembles every connector into the catalogue the engine
// builds pipelines against.
package connectors

import (
	"github.com/loyalty-connector/engine/connectors/braze"
	"github.com/loyalty-connector/engine/connectors/csvfile"
	"github.com/loyalty-connector/engine/connectors/generic"
	"github.com/loyalty-connector/engine/connectors/sessionm"
	"github.com/loyalty-connector/engine/engine/spec"
)

// Catalog returns the connection and source types of all connectors.
func Catalog() *spec.Catalog {
	return spec.NewCatalog(
		[]*spec.ConnectionType{sessionm.Core, sessionm.Connect, braze.REST, generic.Connection},
		[]*spec.SourceType{braze.WebhookSource, sessionm.EventSource, generic.Source, csvfile.Source},
	)
}
