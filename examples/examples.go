// Package examples carries the example files the binary needs when it runs
// outside this repository: the sandbox seeds, so `engine sandbox` and
// `engine run --sandbox` work from any folder.
package examples

import "embed"

// Sandbox holds sandbox/sessionm.yaml and sandbox/braze.yaml.
//
//go:embed sandbox/*.yaml
var Sandbox embed.FS

// SandboxEnv is sandbox.env: what `engine run --sandbox` falls back to
// for settings nobody set, so the demo needs no flags.
//
//go:embed sandbox.env
var SandboxEnv []byte

// Templates holds templates/: Braze message templates with users and
// trigger properties to preview them with. templates/index.json lists
// them (name, title, template, user, and optionally trigger, context,
// event: paths inside templates/).
//
//go:embed templates
var Templates embed.FS
