// Package schemas embeds the JSON Schemas of pipeline and connections files,
// so the validator uses exactly the files editors see through the
// yaml-language-server line.
package schemas

import _ "embed"

//go:embed pipeline.schema.json
var Pipeline []byte

//go:embed connections.schema.json
var Connections []byte
