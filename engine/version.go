package engine

import (
	"runtime/debug"
)

// Version is set at build time with -ldflags "-X .../engine.Version=v1.2.3";
// otherwise it is read from the build information.
var Version = ""

// VersionString describes this build: version, commit and Go version.
func VersionString() string {
	v, commit, modified := Version, "", false
	goVersion := "unknown Go"
	if info, ok := debug.ReadBuildInfo(); ok {
		goVersion = info.GoVersion
		if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "dev"
	}
	out := "engine " + v
	if commit != "" {
		if len(commit) > 12 {
			commit = commit[:12]
		}
		out += " commit " + commit
		if modified {
			out += " (modified)"
		}
	}
	return out + " " + goVersion
}
