package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/runner"
)

// reloader reloads the pipelines of engine run when their files change
// (DESIGN §5): it watches the folders rather than the files, since editors
// save by writing a new file and renaming it over the old one, and
// Kubernetes swaps a symlinked folder, and it watches a folder again when
// it is replaced; it reads nothing until every changed file has been
// quiet for a while; and it rescans on a timer in case an event was
// missed. SIGHUP and POST /-/reload take the same path. A reload builds
// everything first (the code of engine validate) and the runner swaps in
// only what changed and built.
type reloader struct {
	paths  []string
	loader *engine.Loader
	runner applier
	log    *slog.Logger
	watch  bool          // follow change notices (fsnotify)
	quiet  time.Duration // how long the changed files must all be left alone before any is read
	// goneQuiet is how long a changed file the loader reads must stay
	// gone before a reload reads it as deleted (when longer than quiet):
	// rm then cp, or a checkout, on a busy machine left a gap of 190 ms
	// where 50 were meant, and its webhooks were answered 404 meanwhile
	// (a QA run), which Braze does not retry.
	goneQuiet time.Duration
	rescan    time.Duration // 0: no timer

	mu   sync.Mutex
	last string // fingerprint of the files the running set was built from

	stopped sync.WaitGroup // run's loop, until its context ends
}

// applier makes a loaded project the running set: *runner.Runner, or in
// tests a recorder of what each reload read.
type applier interface {
	Apply(*engine.Project) runner.ReloadReport
}

// reload loads the pipelines and applies them. Unless forced, nothing is
// built when no file changed since the last reload.
func (rl *reloader) reload(trigger string, force bool) runner.ReloadReport {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	fp := fingerprint(rl.loader.Inputs(rl.paths))
	if !force && fp == rl.last {
		return runner.ReloadReport{At: time.Now(), OK: true}
	}
	proj := rl.loader.Load(rl.paths)
	rep := rl.runner.Apply(proj)
	if rep.Stopping {
		rl.log.Info("not reloaded: the engine is stopping", "trigger", trigger)
		return rep
	}
	rl.last = fp
	// Every reload that ran writes its line, changes="no change" too: a
	// SIGHUP or POST /-/reload with nothing to do would otherwise leave
	// no sign that it was done. Unforced ones with no file changed
	// returned above, so rescans do not fill the log.
	attrs := []any{"trigger", trigger, "changes", rep.Summary()}
	var problems []string
	for _, p := range slices.Concat(changeProblems(rep.Changes), rep.Problems) {
		// A connections.yaml problem is listed with each pipeline it
		// rejects, and with the reload's own: one line names it once.
		if !slices.Contains(problems, p) {
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		attrs = append(attrs, "problems", strings.Join(problems, "; "))
	}
	if rep.OK {
		rl.log.Info("reloaded", attrs...)
	} else {
		rl.log.Warn("reloaded, with files rejected; their running versions go on", attrs...)
	}
	for _, w := range rep.Warnings {
		rl.log.Warn("a reloaded file has a warning", "warning", w)
	}
	return rep
}

// changeProblems lists the problems of every change, in order.
func changeProblems(changes []runner.PipelineChange) []string {
	var out []string
	for _, c := range changes {
		out = append(out, c.Problems...)
	}
	return out
}

// run reloads on change notices, on the rescan timer and on SIGHUP until
// ctx ends (rl.stopped waits for that). When the folders cannot be
// watched it returns the error and still reloads on the timer and SIGHUP.
func (rl *reloader) run(ctx context.Context) error {
	var fw *folders
	var watchErr error
	if rl.watch {
		var err error
		fw, err = watchFolders(watchedFolders(slices.Concat(rl.paths, rl.loader.Inputs(rl.paths))), rl.log)
		if err != nil {
			watchErr = fmt.Errorf("watching the pipeline files: %w", err)
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	rl.stopped.Add(1)
	go func() {
		defer rl.stopped.Done()
		defer signal.Stop(hup)
		rl.loop(ctx, fw, hup)
	}()
	return watchErr
}

// loop is run's: fw is nil when the folders are not watched.
func (rl *reloader) loop(ctx context.Context, fw *folders, hup <-chan os.Signal) {
	var events <-chan fsnotify.Event
	var errs <-chan error
	if fw != nil {
		defer fw.w.Close()
		events, errs = fw.w.Events, fw.w.Errors
	}
	var rescan <-chan time.Time
	if rl.rescan > 0 {
		t := time.NewTicker(rl.rescan)
		defer t.Stop()
		rescan = t.C
	}
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	armed := false // settle will fire
	arm := func(d time.Duration) {
		if !armed {
			settle.Reset(d)
			armed = true
		}
	}
	changed := map[string]time.Time{} // file -> its last event
	// recheck puts the watch back on a folder that was deleted, renamed
	// or swapped, and counts that as a change notice: the new folder may
	// still be filling (cp -r), and what was written before the watch
	// came back sent none. It says whether a folder is still gone: no
	// notice will say it is back, so settle looks again after lostPoll.
	recheck := func() (lost bool) {
		if fw == nil {
			return false
		}
		back, lost := fw.check()
		for _, dir := range back {
			changed[dir] = time.Now()
		}
		return lost
	}
	lostPoll := max(rl.quiet, 100*time.Millisecond)
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.Op == fsnotify.Chmod || !rl.loader.Reads(ev.Name) && !fw.watches(ev.Name) && !fw.swaps(ev.Name) {
				continue // a log or an editor's swap file: it must not hold reloads back
			}
			changed[ev.Name] = time.Now()
			// Not pushed back by each notice: when it fires it looks at
			// them all, and waits again if one is recent.
			arm(rl.quiet)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			rl.log.Warn("watching the pipeline files failed; "+rl.fallback(), "error", err)
		case <-settle.C:
			armed = false
			lost := recheck()
			// Nothing is read until every changed file is quiet: a file a
			// save or a checkout moves away for a moment would be read as
			// deleted, and its pipeline removed.
			if wait := unsettled(changed, rl.quiet, rl.goneQuiet, time.Now(), rl.gone); wait > 0 {
				arm(wait)
			} else if len(changed) > 0 {
				clear(changed)
				rl.reload("file change", false)
			}
			if lost {
				arm(lostPoll)
			}
		case <-rescan:
			lost := recheck()
			if len(changed) == 0 {
				rl.reload("rescan", false)
			} else { // files are still being written, or a folder is back
				arm(unsettled(changed, rl.quiet, rl.goneQuiet, time.Now(), rl.gone))
			}
			if lost {
				arm(lostPoll)
			}
		case <-hup:
			rl.reload("SIGHUP", true)
		}
	}
}

// unsettled says how long until every file in changed has been left
// alone for quiet, and every one of them that is gone for goneQuiet (when
// longer): 0 when they all have.
func unsettled(changed map[string]time.Time, quiet, goneQuiet time.Duration, now time.Time, gone func(file string) bool) time.Duration {
	var wait time.Duration
	for file, at := range changed {
		need := quiet
		if goneQuiet > quiet && gone(file) {
			need = goneQuiet
		}
		wait = max(wait, need-now.Sub(at))
	}
	return wait
}

// gone says whether file is one the loader reads, and is not there.
func (rl *reloader) gone(file string) bool {
	if !rl.loader.Reads(file) {
		return false
	}
	_, err := os.Lstat(file)
	return errors.Is(err, fs.ErrNotExist)
}

// folders watches the pipeline folders. A watch belongs to the folder,
// not its path: when the folder is deleted or renamed, or the symlink
// that names it is swapped, the path is no longer watched, so check puts
// the watch on what the path names now.
type folders struct {
	w    *fsnotify.Watcher
	dirs []string
	on   map[string]os.FileInfo // the folder each path named when its watch was added
	lost map[string]string      // why a path is not watched, once logged
	log  *slog.Logger
}

func watchFolders(dirs []string, log *slog.Logger) (*folders, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	fw := &folders{w: w, dirs: dirs, on: map[string]os.FileInfo{}, lost: map[string]string{}, log: log}
	for _, dir := range dirs {
		if err := fw.add(dir); err != nil {
			w.Close()
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
	}
	return fw, nil
}

// add watches dir. It looks at the folder before watching it: swapped in
// between, the watch is on the new folder and the next check sees that
// the old one was looked at, and adds the watch again.
func (fw *folders) add(dir string) error {
	info, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if err := fw.w.Add(dir); err != nil {
		return err
	}
	fw.on[dir] = info
	return nil
}

// watches reports whether path is one of the watched folders (deleted,
// renamed or swapped: check puts the watch back).
func (fw *folders) watches(path string) bool { return slices.Contains(fw.dirs, filepath.Clean(path)) }

// swaps reports whether path is Kubernetes' swap of a ConfigMap volume
// mounted at a watched folder: an update writes a new ..<time> folder and
// renames a ..data_tmp symlink over ..data, and the files the loader reads
// (symlinks through ..data) see no event of their own.
func (fw *folders) swaps(path string) bool {
	return fw != nil && strings.HasPrefix(filepath.Base(path), "..") && fw.watches(filepath.Dir(path))
}

// check watches again each path whose folder changed since it was
// watched, once the path names a folder again. It returns those watched
// again, and whether a path is still not watched.
func (fw *folders) check() (back []string, lost bool) {
	watched := fw.w.WatchList()
	for _, dir := range fw.dirs {
		now, err := os.Stat(dir)
		if was := fw.on[dir]; was != nil {
			// fsnotify drops the watch of a folder deleted or renamed (a
			// folder made again may get the same inode number), and keeps
			// the one on a folder a swapped symlink named.
			if err == nil && os.SameFile(now, was) && slices.Contains(watched, dir) {
				continue
			}
			_ = fw.w.Remove(dir)
			delete(fw.on, dir)
		}
		if err == nil {
			err = fw.add(dir)
		}
		if err != nil {
			if why := err.Error(); fw.lost[dir] != why {
				fw.lost[dir] = why
				fw.log.Warn("a pipeline folder is gone or cannot be watched: its changes are not noticed until it is back",
					"folder", dir, "error", err)
			}
			continue
		}
		delete(fw.lost, dir)
		fw.log.Info("watching the pipeline folder again", "folder", dir)
		back = append(back, dir)
	}
	return back, len(fw.lost) > 0
}

// watchedFolders is the folders paths name, or hold the files paths name.
func watchedFolders(paths []string) []string {
	var out []string
	for _, p := range paths {
		dir := p
		if info, err := os.Stat(p); err != nil || !info.IsDir() {
			dir = filepath.Dir(p)
		}
		if dir = filepath.Clean(dir); !slices.Contains(out, dir) {
			out = append(out, dir)
		}
	}
	return out
}

// fingerprint hashes the names and contents of files (Loader.Inputs), so
// a reload can tell that nothing changed without building anything.
func fingerprint(files []string) string {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\n", f)
		if fh, err := os.Open(f); err != nil {
			fmt.Fprintf(h, "%v\n", err)
		} else if info, err := fh.Stat(); err == nil && info.IsDir() {
			fmt.Fprintf(h, "a folder\n") // a path holding no pipeline files
			fh.Close()
		} else {
			_, _ = io.Copy(h, fh)
			fh.Close()
		}
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// fallback says what still reloads when change notices fail.
func (rl *reloader) fallback() string {
	if rl.rescan > 0 {
		return fmt.Sprintf("the rescan every %s, SIGHUP and POST /-/reload still reload", rl.rescan)
	}
	return "only SIGHUP and POST /-/reload reload now (--rescan is 0)"
}
