package engine

import (
	"bytes"
	"cmp"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/loyalty-connector/engine/engine/diag"
)

// Inboxes keeps the folders CSV pipelines watch (source.inbox) apart. A
// watcher imports each file it finds once and then files it away to its
// done/ or failed/ folder, so two pipelines on one folder would each get
// only the files the other had not taken first, and a pipeline watching
// another's done/ or failed/ would import that one's files a second time.
type Inboxes struct {
	claimed []inboxClaim
}

type inboxClaim struct {
	folder string // as the pipeline gives it
	real   string // absolute, with the links that exist resolved
	owner  string
}

// NewInboxes returns an empty set of claims.
func NewInboxes() *Inboxes { return &Inboxes{} }

// inboxSubfolders are where a watcher files the files it took away: it
// reads only the files directly in its folder, so a folder deeper down
// shares none of its files, but these two get every one of them.
var inboxSubfolders = []string{"done", "failed"}

// Claim gives folder to owner (a pipeline's name), unless it is another
// pipeline's inbox folder or shares files with one; it returns what is
// wrong, or "".
func (in *Inboxes) Claim(folder, owner string) (problem string) {
	real := RealPath(folder)
	for _, c := range in.claimed {
		switch {
		case c.real == real:
			return fmt.Sprintf("%s is also the inbox folder of pipeline %q: a file dropped there is imported once, by whichever pipeline looks first, and then filed away to done/, so the other never sees it; each inbox folder belongs to one pipeline, so give this one a folder of its own", folder, c.owner)
		case slices.Contains(inboxSubfolders, subfolderOf(c.real, real)):
			return fmt.Sprintf("%s is where pipeline %q files away the CSV files it imported (its inbox folder is %s), so this pipeline would import each of them again; each inbox folder belongs to one pipeline, so give this one a folder of its own", folder, c.owner, c.folder)
		case slices.Contains(inboxSubfolders, subfolderOf(real, c.real)):
			return fmt.Sprintf("pipeline %q watches %s, where this pipeline files away the CSV files it imported, so that pipeline would import each of them again; each inbox folder belongs to one pipeline, so give this one a folder whose done/ and failed/ no other pipeline watches", c.owner, c.folder)
		}
	}
	in.claimed = append(in.claimed, inboxClaim{folder: folder, real: real, owner: owner})
	return ""
}

// subfolderOf is the name of the folder directly inside parent that child
// is, or "".
func subfolderOf(parent, child string) string {
	if filepath.Dir(child) != parent {
		return ""
	}
	return filepath.Base(child)
}

// RealPath names a file or folder as the file system finds it: absolute
// and clean, with the links in the part of it that exists resolved (a
// watcher makes the rest of a folder when it starts), so two spellings of
// one path (relative, ../, through a link) compare equal.
func RealPath(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return filepath.Clean(path)
	}
	rest := ""
	for dir := abs; ; dir = filepath.Dir(dir) {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			return filepath.Join(real, rest)
		}
		if filepath.Dir(dir) == dir {
			return abs
		}
		rest = filepath.Join(filepath.Base(dir), rest)
	}
}

// claimInboxes refuses, at its source.inbox, a pipeline of proj whose
// inbox folder another pipeline claimed first (Inboxes). Across all the
// folders loaded, in the order files claim their routes (see
// Loader.Running): a file that changed is the one refused, not the
// pipeline that was watching the folder.
func (l *Loader) claimInboxes(proj *Project) {
	rank := func(p *Pipeline) int {
		if l.Running == nil {
			return 0
		}
		switch running := l.Running(p.Name); {
		case running == nil:
			return 2
		case bytes.Equal(running.src, p.src):
			return 0
		}
		return 1
	}
	inboxes := NewInboxes()
	var refused []*Pipeline
	for _, p := range slices.SortedStableFunc(slices.Values(proj.Pipelines), func(a, b *Pipeline) int { return cmp.Compare(rank(a), rank(b)) }) {
		if p.Source.Inbox == "" {
			continue
		}
		if problem := inboxes.Claim(p.Source.Inbox, p.Name); problem != "" {
			at := p.Source.inboxAt
			proj.Diagnostics.Add(diag.Diagnostic{File: p.File, Line: at.line, Column: at.col, Path: "source.inbox",
				Message: l.Resolver.Masker().String(problem), Severity: diag.Error})
			refused = append(refused, p)
		}
	}
	proj.Pipelines = slices.DeleteFunc(proj.Pipelines, func(p *Pipeline) bool { return slices.Contains(refused, p) })
}
