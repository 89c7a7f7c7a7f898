package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/inbox"
)

// defaultDataDir is the data folder the engine uses when not told otherwise.
const defaultDataDir = "./data"

// defaultPipelines is where dlq replay looks for the pipelines when not
// told: the folder every engine run example names, beside ./data.
const defaultPipelines = "pipelines/"

// dlqNow is the clock --since 2h counts back from; tests fix it.
var dlqNow = time.Now

type dlqSubcommand struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

var dlqSubcommands = []dlqSubcommand{
	{"list", "list dead letters, oldest first", runDlqList},
	{"show", "show everything in one dead letter", runDlqShow},
	{"replay", "queue dead letters again in their pipelines' inboxes", runDlqReplay},
	{"drop", "delete dead letters for good", runDlqDrop},
}

func runDlq(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "engine dlq: name a subcommand: list, show, replay or drop")
		fmt.Fprintln(stderr)
		dlqUsage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "--h":
		dlqUsage(stdout)
		return exitOK
	}
	for _, sub := range dlqSubcommands {
		if sub.name == name {
			return sub.run(args[1:], stdout, stderr)
		}
	}
	if strings.HasPrefix(name, "-") {
		// Flags come after the subcommand, because each subcommand takes
		// its own set of them.
		fmt.Fprintf(stderr, "engine dlq: name the subcommand before the flags, e.g. engine dlq list %s\n\n", strings.Join(args, " "))
	} else {
		var names []string
		for _, sub := range dlqSubcommands {
			names = append(names, sub.name)
		}
		if nearMiss(stderr, "engine dlq", "subcommand", name, names) {
			return exitUsage
		}
		fmt.Fprintf(stderr, "engine dlq: unknown subcommand %q\n\n", name)
	}
	dlqUsage(stderr)
	return exitUsage
}

func dlqUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: engine dlq SUBCOMMAND [flags] [ID...]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, `Dead letters are the events the engine gave up on (a request the target
rejected, attempts exhausted, a template or lookup that failed, a broken CSV
row). They are kept, secrets masked, in the inbox of the engine's data
folder. The engine must be stopped while dlq reads or changes that folder;
while it runs, its admin listener (--admin-addr, 127.0.0.1:8079 by default)
does the same: GET /dlq, GET /dlq/ID, POST /dlq/ID/replay, DELETE /dlq/ID,
and POST /dlq/replay?all=true and DELETE /dlq?all=true with the filters.`)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "subcommands:")
	for _, sub := range dlqSubcommands {
		fmt.Fprintf(w, "  %-8s %s\n", sub.name, sub.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'engine dlq SUBCOMMAND --help' for a subcommand's flags.")
}

// dlqFlags are the flags of the dlq subcommands; each registers the ones
// it takes.
type dlqFlags struct {
	data     string
	pipeline string
	reason   string
	since    string
	limit    int
	after    uint64
	format   string
	all      bool
	// pipelines are the files and folders engine run runs.
	pipelines listFlag
}

func (f *dlqFlags) registerData(fs *flag.FlagSet) {
	fs.StringVar(&f.data, "data", defaultDataDir, "the engine's data `folder`, which holds inbox.db")
}

func (f *dlqFlags) registerFilters(fs *flag.FlagSet) {
	fs.StringVar(&f.pipeline, "pipeline", "", "only dead letters of the pipeline called `NAME`")
	fs.StringVar(&f.reason, "reason", "", "only dead letters with this `REASON`: "+strings.Join(inbox.Reasons, ", "))
	fs.StringVar(&f.since, "since", "", "only dead letters from the last `DURATION` (2h, 30m, 7d), or since an RFC 3339 time (2026-11-29T10:00:00Z) or a day (2026-11-29, from midnight UTC)")
}

func (f *dlqFlags) registerPipelines(fs *flag.FlagSet) {
	fs.Var(&f.pipelines, "pipelines", "a pipeline file or folder (`PATH`) that engine run runs; repeatable, default "+defaultPipelines+". A dead letter of a pipeline none of them defines is not replayed")
}

func (f *dlqFlags) registerFormat(fs *flag.FlagSet) {
	fs.StringVar(&f.format, "format", "text", "output `format`: text or json")
}

func (f *dlqFlags) filtered() bool { return f.pipeline != "" || f.reason != "" || f.since != "" }

// filter turns the filter flags, as fs parsed them, into a store filter.
func (f *dlqFlags) filter(fs *flag.FlagSet) (inbox.DeadFilter, error) {
	df := inbox.DeadFilter{Pipeline: f.pipeline, Reason: f.reason}
	var empty error
	fs.Visit(func(fl *flag.Flag) {
		// An unset variable in a script (--pipeline "$P"): read as no
		// filter, drop --all dropped every dead letter (a QA pass).
		if (fl.Name == "pipeline" || fl.Name == "reason" || fl.Name == "since") && fl.Value.String() == "" && empty == nil {
			empty = fmt.Errorf("--%s is empty; give a value, or leave it out", fl.Name)
		}
	})
	if empty != nil {
		return df, empty
	}
	if f.reason != "" {
		if err := inbox.CheckReason(f.reason); err != nil {
			return df, fmt.Errorf("--reason %w", err)
		}
	}
	if f.since != "" {
		since, err := inbox.ParseSince(f.since, dlqNow())
		if err != nil {
			return df, fmt.Errorf("--since %w", err)
		}
		df.Since = since
	}
	return df, nil
}

// dlqCommand holds what every subcommand shares: its name for messages and
// where they go.
type dlqCommand struct {
	name   string
	stderr io.Writer
}

func (c dlqCommand) usageError(format string, a ...any) int {
	fmt.Fprintf(c.stderr, "engine dlq %s: %s\n", c.name, fmt.Sprintf(format, a...))
	return exitUsage
}

func (c dlqCommand) problem(format string, a ...any) int {
	fmt.Fprintf(c.stderr, "engine dlq %s: %s\n", c.name, fmt.Sprintf(format, a...))
	return exitProblem
}

// open opens the inbox in dir, or prints why it cannot and returns false.
// It checks that the engine has run there first: inbox.Open creates a
// missing folder and file, so a mistyped --data would otherwise leave an
// empty data folder behind and look like "no dead letters".
func (c dlqCommand) open(dir string) (*inbox.Store, bool) {
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		c.problem("no data folder %s: the engine has not run here; pass --data DIR", dir)
		return nil, false
	case err != nil:
		c.problem("data folder %s: %v", dir, err)
		return nil, false
	case !info.IsDir():
		c.problem("%s is not a folder; pass --data DIR with the engine's data folder", dir)
		return nil, false
	}
	db := filepath.Join(dir, "inbox.db")
	if info, err := os.Stat(db); (errors.Is(err, os.ErrNotExist) || err == nil && info.Size() == 0) && hasJournal(dir) {
		// Not "the engine has not run here": it has, and its inbox is gone.
		c.problem("data folder %s has a missing or empty inbox.db beside the inbox journal (inbox.wal.0 and .1): the inbox was removed or cut, with its dead letters; restore inbox.db (engine run refuses to start without it)", dir)
		return nil, false
	} else if errors.Is(err, os.ErrNotExist) {
		c.problem("data folder %s has no inbox.db: the engine has not run here; pass --data DIR", dir)
		return nil, false
	} else if err == nil && info.Size() == 0 {
		// Opened, it would become an empty inbox: dlq makes none.
		c.problem("data folder %s has an empty inbox.db, which holds no dead letters: the engine has not run here, or the file was cut; pass --data DIR", dir)
		return nil, false
	}
	s, err := inbox.Open(dir, dlqInboxOptions)
	if err != nil {
		// The inbox's advice (give each engine its own --data) is for
		// engine run, not for dlq.
		var locked *inbox.LockedError
		if errors.As(err, &locked) {
			c.problem("%s", lockedAdvice(locked))
			return nil, false
		}
		c.problem("%v", err)
		return nil, false
	}
	_ = s.SetHolder(inbox.Holder{Command: "engine dlq " + c.name, PID: os.Getpid()}) // named to an engine run that waits
	for _, d := range s.JournalDamage() {
		fmt.Fprintf(c.stderr, "engine dlq %s: %s (%s, bytes %d to %d, epoch %d)\n", c.name, journalDamaged, filepath.Join(dir, d.File), d.From, d.To, d.Epoch)
	}
	if n := s.ReplaysSettled(); n > 0 {
		removed := "their dead letters are"
		if n == 1 {
			removed = "its dead letter is"
		}
		fmt.Fprintf(c.stderr, "engine dlq %s: an earlier replay was cut short (killed, or on a full disk) after it had queued %s again; %s removed now, so none is sent twice\n", c.name, plural(n, "event"), removed)
	}
	return s, true
}

// lockedAdvice says what to do about a data folder another process holds,
// by who it is.
func lockedAdvice(locked *inbox.LockedError) string {
	h := locked.Holder
	const routes = "GET /dlq lists dead letters, GET /dlq/ID shows one, POST /dlq/ID/replay replays one, DELETE /dlq/ID drops one, POST /dlq/replay?all=true and DELETE /dlq?all=true (with pipeline=, reason=, since=) replay or drop all they select"
	switch {
	case h.IsDlq():
		return fmt.Sprintf("data folder %s is in use by %s (pid %d); wait for it to finish, then try again", locked.Dir, h.Command, h.PID)
	case h.Command != "" && h.Admin != "":
		return fmt.Sprintf("data folder %s is in use by %s (pid %d); stop it first, or, while it runs, use its admin listener at http://%s: %s",
			locked.Dir, h.Command, h.PID, h.Admin, routes)
	case h.Command != "":
		return fmt.Sprintf("data folder %s is in use by %s (pid %d), which has no admin listener (--admin-addr \"\"); stop it first", locked.Dir, h.Command, h.PID)
	}
	return fmt.Sprintf("data folder %s is in use by another process, most likely a running engine (its inbox.db is locked); "+
		"stop it first, or, while it runs, use its admin listener (--admin-addr, default 127.0.0.1:8079): %s", locked.Dir, routes)
}

func runDlqList(args []string, stdout, stderr io.Writer) int {
	c := dlqCommand{"list", stderr}
	fs := newFlagSet("dlq list", "engine dlq list [flags]",
		`Lists dead letters, oldest first, one per line: id, when the engine gave
up (UTC), pipeline, pipeline version, reason, delivery attempts, the last HTTP
status, the event's id (a CSV row's: its file's hash and row number) and the
error, shortened. The last line counts them. --format json prints an array
with everything in each dead letter.`, stderr)
	var f dlqFlags
	f.registerData(fs)
	f.registerFilters(fs)
	fs.IntVar(&f.limit, "limit", 0, "list at most `N` dead letters, the oldest (0: all)")
	fs.Uint64Var(&f.after, "after", 0, "list those after the dead letter `ID` only: with --limit, the last id of one page gives the next")
	f.registerFormat(fs)
	positional, code, done := parse(fs, args, stdout)
	if done {
		return code
	}
	if len(positional) > 0 {
		return c.usageError("takes no arguments, got %q; to see one dead letter, use engine dlq show ID", positional[0])
	}
	if f.format != "text" && f.format != "json" {
		return c.usageError("--format is text or json, not %q", f.format)
	}
	if f.limit < 0 {
		return c.usageError("--limit %d: give a positive number, or 0 for all", f.limit)
	}
	filter, err := f.filter(fs)
	if err != nil {
		return c.usageError("%v", err)
	}
	filter.After = f.after
	s, ok := c.open(f.data)
	if !ok {
		return exitProblem
	}
	defer s.Close()
	moreMatch := func(n int, last uint64) string {
		return fmt.Sprintf("%s shown; more match (the next ones: --after %d, or raise --limit)", plural(n, "dead letter"), last)
	}
	// Dead letters are written as they are read, never all held at once:
	// 200,000 of them are 1.7 GB decoded.
	if f.format == "json" {
		filter.Limit = f.limit
		n, err := writeDeadLettersJSON(stdout, s, filter)
		if err != nil {
			return c.problem("%v", err)
		}
		if n == 0 {
			c.noteUnknownPipeline(s, f.pipeline)
		}
		if f.limit > 0 && n == f.limit {
			// As the text says it; stderr keeps the JSON whole.
			probe := filter
			probe.Limit = f.limit + 1
			total, last := 0, uint64(0)
			if s.EachDeadLetterSummary(probe, func(dl inbox.DeadLetter) error {
				if total++; total <= f.limit {
					last = dl.ID
				}
				return nil
			}) == nil && total > f.limit {
				fmt.Fprintln(c.stderr, moreMatch(n, last))
			}
		}
		return exitOK
	}
	if f.limit > 0 {
		// One more than asked says whether the limit cut the list.
		filter.Limit = f.limit + 1
	}
	// A first pass finds how wide the columns are, a second writes the
	// rows; both read summaries, which have every column.
	t := newDeadLetterTable()
	n := 0
	err = s.EachDeadLetterSummary(filter, func(dl inbox.DeadLetter) error {
		if n++; f.limit == 0 || n <= f.limit {
			t.fit(&dl)
		}
		return nil
	})
	if err != nil {
		return c.problem("%v", err)
	}
	more := f.limit > 0 && n > f.limit
	if more {
		n = f.limit
	}
	if n == 0 {
		fmt.Fprintln(stdout, "no dead letters")
		c.noteUnknownPipeline(s, f.pipeline)
		return exitOK
	}
	filter.Limit = n
	bw := bufio.NewWriter(stdout)
	t.writeHeader(bw)
	var last uint64
	err = s.EachDeadLetterSummary(filter, func(dl inbox.DeadLetter) error {
		t.writeRow(bw, &dl)
		last = dl.ID
		return nil
	})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return c.problem("%v", err)
	}
	if more {
		fmt.Fprintln(stdout, moreMatch(n, last))
	} else {
		fmt.Fprintln(stdout, plural(n, "dead letter"))
	}
	return exitOK
}

// noteUnknownPipeline says on stderr when no dead letter belongs to
// pipeline: "no dead letters" read as if a misspelt pipeline had nothing
// wrong. The pipelines that have some are named, to spot the typo.
func (c dlqCommand) noteUnknownPipeline(s *inbox.Store, pipeline string) {
	if pipeline == "" {
		return
	}
	dead, err := s.DeadLetterPipelines()
	if err != nil || dead[pipeline] {
		return
	}
	have := "there are no dead letters at all"
	if len(dead) > 0 {
		have = "pipelines with dead letters: " + strings.Join(slices.Sorted(maps.Keys(dead)), ", ")
	}
	fmt.Fprintf(c.stderr, "engine dlq %s: no dead letter belongs to a pipeline called %q; %s\n", c.name, pipeline, have)
}

// writeDeadLettersJSON writes the dead letters f selects as an indented
// JSON array, one at a time as they are read, and says how many.
func writeDeadLettersJSON(w io.Writer, s *inbox.Store, f inbox.DeadFilter) (int, error) {
	bw := bufio.NewWriter(w)
	n := 0
	err := s.EachDeadLetter(f, func(dl inbox.DeadLetter) error {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.SetIndent("  ", "  ") // as an element of an indented array
		if err := enc.Encode(dl); err != nil {
			return err
		}
		sep := ",\n  "
		if n == 0 {
			sep = "[\n  "
		}
		n++
		bw.WriteString(sep)
		_, err := bw.Write(unescapeHTML(bytes.TrimSuffix(b.Bytes(), []byte("\n"))))
		return err
	})
	if err != nil {
		return n, err
	}
	if n == 0 {
		bw.WriteString("[]\n") // [] rather than null for tools
	} else {
		bw.WriteString("\n]\n")
	}
	return n, bw.Flush()
}

// errorWidth is where the list cuts errors. The other columns already take
// 70 to 110 characters (an RFC 3339 time, pipeline names such as
// offer-issued-to-braze-campaign), so a row cannot keep to 100 columns and
// still say what went wrong; 40 characters do, and engine dlq show has the
// rest.
const errorWidth = 40

// deadLetterTable writes the list: its columns are as wide as their
// widest cell, which fit learns one dead letter at a time.
type deadLetterTable struct {
	widths []int
}

// EVENT is the event's id: for a CSV row, its file's hash and its row
// number, which tie a dead letter to its row without dlq show.
var deadLetterColumns = []string{"ID", "TIME", "PIPELINE", "VERSION", "REASON", "ATTEMPTS", "STATUS", "EVENT", "ERROR"}

func newDeadLetterTable() *deadLetterTable {
	t := &deadLetterTable{widths: make([]int, len(deadLetterColumns)-1)}
	t.fitCells(deadLetterColumns)
	return t
}

func deadLetterCells(dl *inbox.DeadLetter) []string {
	status := "-"
	if dl.Response != nil {
		status = strconv.Itoa(dl.Response.Status)
	}
	return []string{strconv.FormatUint(dl.ID, 10), formatTime(dl.At), orDash(dl.Pipeline), orDash(dl.Version),
		orDash(dl.Reason), strconv.Itoa(dl.Attempts), status, orDash(oneLine(dl.EventID)), oneLine(listError(dl))}
}

// listError is the error as the list shows it. A broken CSV row's error
// begins with its file's path, absolute for a file of an inbox folder:
// cut at errorWidth, the list showed only the path, never what was wrong
// (a QA run). The list says "line N: what is wrong"; the row number is in
// EVENT, and dlq show has the error whole, file included. The list reads
// summaries, without the event that names the file, so the path is found
// in the error as csvfile.RowError writes it, FILE:LINE: row N: REASON,
// N being the row of the event id (HASH:N).
func listError(dl *inbox.DeadLetter) string {
	_, row, ok := strings.Cut(dl.EventID, ":")
	if dl.Reason != "csv_row" || !ok {
		return dl.Error
	}
	m := csvRowErrorRE.FindStringSubmatch(dl.Error)
	if m == nil || m[2] != row {
		return dl.Error
	}
	return fmt.Sprintf("line %s: %s", m[1], m[3])
}

// csvRowErrorRE reads a csvfile.RowError's text: FILE:LINE: row N: REASON.
var csvRowErrorRE = regexp.MustCompile(`(?s)^.+?:(\d+): row (\d+): (.*)$`)

func (t *deadLetterTable) fit(dl *inbox.DeadLetter) { t.fitCells(deadLetterCells(dl)) }

func (t *deadLetterTable) fitCells(cells []string) {
	for i := range t.widths {
		t.widths[i] = max(t.widths[i], utf8.RuneCountInString(cells[i]))
	}
}

func (t *deadLetterTable) writeHeader(w io.Writer) { t.writeCells(w, deadLetterColumns) }

func (t *deadLetterTable) writeRow(w io.Writer, dl *inbox.DeadLetter) {
	t.writeCells(w, deadLetterCells(dl))
}

func (t *deadLetterTable) writeCells(w io.Writer, cells []string) {
	var b strings.Builder
	last := len(t.widths)
	for i, cell := range cells[:last] {
		b.WriteString(cell)
		b.WriteString(strings.Repeat(" ", t.widths[i]-utf8.RuneCountInString(cell)+2))
	}
	b.WriteString(shorten(cells[last], errorWidth))
	fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
}

func runDlqShow(args []string, stdout, stderr io.Writer) int {
	c := dlqCommand{"show", stderr}
	fs := newFlagSet("dlq show", "engine dlq show [flags] ID",
		`Shows everything in one dead letter: pipeline and version, the event id,
when the event arrived and when the engine gave up, the reason and error, the
attempts, the request as it went out (method, URL, headers, body; secrets
masked), the last response, and the event. ID is a number from engine dlq list.`, stderr)
	var f dlqFlags
	f.registerData(fs)
	f.registerFormat(fs)
	positional, code, done := parse(fs, args, stdout)
	if done {
		return code
	}
	if len(positional) != 1 {
		return c.usageError("name one dead-letter id, e.g. engine dlq show 4 (engine dlq list shows the ids)")
	}
	if f.format != "text" && f.format != "json" {
		return c.usageError("--format is text or json, not %q", f.format)
	}
	ids, err := parseDeadLetterIDs(positional)
	if err != nil {
		return c.usageError("%v", err)
	}
	s, ok := c.open(f.data)
	if !ok {
		return exitProblem
	}
	defer s.Close()
	dl, err := s.GetDeadLetter(ids[0])
	if errors.Is(err, inbox.ErrNoSuchDeadLetter) {
		return c.problem("no dead letter %d", ids[0])
	}
	if err != nil {
		return c.problem("dead letter %d: %v", ids[0], err)
	}
	if f.format == "json" {
		err = writeIndentedJSON(stdout, dl)
	} else {
		_, err = io.WriteString(stdout, deadLetterText(&dl))
	}
	if err != nil {
		return c.problem("%v", err)
	}
	return exitOK
}

func deadLetterText(dl *inbox.DeadLetter) string {
	var b strings.Builder
	field := func(label, value string) {
		// Continuation lines of a multi-line value line up under the first.
		fmt.Fprintf(&b, "%-10s%s\n", label, strings.ReplaceAll(strings.TrimRight(value, "\n"), "\n", "\n"+strings.Repeat(" ", 10)))
	}
	fmt.Fprintf(&b, "dead letter %d\n", dl.ID)
	field("pipeline", orDash(dl.Pipeline))
	field("version", orDash(dl.Version))
	field("event id", orDash(dl.EventID))
	field("received", formatTime(dl.Received))
	field("dead at", formatTime(dl.At))
	field("reason", orDash(dl.Reason))
	field("error", orDash(dl.Error))
	field("attempts", strconv.Itoa(dl.Attempts))
	if r := dl.Request; r != nil {
		b.WriteString("request\n")
		fmt.Fprintf(&b, "  %s %s\n", r.Method, r.URL)
		for _, name := range slices.Sorted(maps.Keys(r.Headers)) {
			fmt.Fprintf(&b, "  %s: %s\n", name, r.Headers[name])
		}
		if r.Body != "" {
			b.WriteString("\n" + indent(pretty(r.Body), "  ") + "\n")
		}
	} else {
		field("request", "none")
	}
	if r := dl.Response; r != nil {
		field("response", "HTTP "+strconv.Itoa(r.Status))
		if r.Excerpt != "" {
			b.WriteString(indent(pretty(r.Excerpt), "  ") + "\n")
		}
	} else {
		field("response", "none")
	}
	if len(dl.Event) > 0 && string(dl.Event) != "null" {
		b.WriteString("event\n")
		b.WriteString(indent(pretty(string(dl.Event)), "  ") + "\n")
	} else {
		field("event", "none")
	}
	return b.String()
}

func runDlqReplay(args []string, stdout, stderr io.Writer) int {
	c := dlqCommand{"replay", stderr}
	fs := newFlagSet("dlq replay", "engine dlq replay [flags] (ID... | --all)",
		`Puts dead letters back into their pipelines' inboxes, with no attempts
counted, and removes them from the dead letters. The next engine run on this
data folder sends them again, through the current version of each pipeline
(which may have been fixed since). The event id is not checked against
recent ones: a replay is deliberate.

Name the ids (from engine dlq list), or pass --all to replay every dead
letter that --pipeline, --reason and --since select.

A broken CSV row (csv_row) cannot be replayed: put the fixed row, under
the header row, in a new file and import that, then drop it (the whole file
imported again would send its other rows again). Nor can a damaged event, which the engine could not
read. Nor can a dead letter of a pipeline that no file in --pipelines
(default pipelines/) defines (its file was renamed or removed), or that
its file now makes answer its callers (respond:): queued, its event would
wait where nothing delivers it, out of dlq's reach.
Named, they are reported as errors; --all skips them and says so. Either
way they stay as they are.

Dead letters are replayed 1,000 at a time; Ctrl-C stops after the ones in
hand and says how many were replayed.`, stderr)
	return runDlqChange(c, fs, args, stdout, dlqChange{
		apply:     (*inbox.Store).RequeueDeadLetters,
		pipelines: true,
		line: func(o inbox.Outcome) string {
			return fmt.Sprintf("replayed %d (%s): queued as event %d", o.ID, o.Pipeline, o.Seq)
		},
		summary: func(n int, data string) string {
			switch n {
			case 0:
				return "replayed no dead letters"
			case 1:
				return "replayed 1 dead letter; it goes out when engine run next starts on " + data
			}
			return fmt.Sprintf("replayed %d dead letters; they go out when engine run next starts on %s", n, data)
		},
	})
}

func runDlqDrop(args []string, stdout, stderr io.Writer) int {
	c := dlqCommand{"drop", stderr}
	fs := newFlagSet("dlq drop", "engine dlq drop [flags] (ID... | --all)",
		`Deletes dead letters for good; the events in them are not sent.

Name the ids (from engine dlq list), or pass --all to drop every dead letter
that --pipeline, --reason and --since select.

Dead letters are dropped 1,000 at a time; Ctrl-C stops after the ones in
hand and says how many were dropped.`, stderr)
	return runDlqChange(c, fs, args, stdout, dlqChange{
		apply: func(s *inbox.Store, ids []uint64, _ func(string) inbox.PipelineState) ([]inbox.Outcome, error) {
			return s.DropDeadLetters(ids)
		},
		line: func(o inbox.Outcome) string {
			return fmt.Sprintf("dropped %d (%s, %s): %s", o.ID, orDash(o.Pipeline), orDash(o.Reason), shorten(oneLine(o.Error), 60))
		},
		summary: func(n int, _ string) string {
			if n == 0 {
				return "dropped no dead letters"
			}
			return "dropped " + plural(n, "dead letter")
		},
	})
}

// dlqChange is what replay and drop do differently.
type dlqChange struct {
	// apply acts on some dead letters in one go and says what became of
	// each; state says what --pipelines says of a pipeline.
	apply func(s *inbox.Store, ids []uint64, state func(pipeline string) inbox.PipelineState) ([]inbox.Outcome, error)
	// pipelines: the command takes --pipelines.
	pipelines bool
	// line says what was done to one, summary how many were.
	line    func(inbox.Outcome) string
	summary func(n int, data string) string
}

// dlqChunk is how many dead letters replay and drop change at a time.
// One at a time, each took its own syncs: 20,000 took over a minute. A
// chunk shares them, and is small enough that an interrupt, which is
// heard between chunks, is heard at once. A var for tests.
var dlqChunk = 1000

// dlqInboxOptions opens the inbox; a var for tests, which make its writes
// fail as on a full disk.
var dlqInboxOptions = inbox.Options{}

// dlqInterrupt starts listening for Ctrl-C and SIGTERM; interrupted says
// whether one came. A var for tests, which interrupt without a signal.
var dlqInterrupt = func() (interrupted func() bool, stop func()) {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	return func() bool {
		select {
		case <-signals:
			return true
		default:
			return false
		}
	}, func() { signal.Stop(signals) }
}

// runDlqChange is replay and drop: both select dead letters by id or with
// --all and the filters, act on them a chunk at a time, and go on past
// unknown ids. An interrupt stops them between chunks, so a chunk is
// either done or untouched, and the output says how far they got.
func runDlqChange(c dlqCommand, fs *flag.FlagSet, args []string, stdout io.Writer, change dlqChange) int {
	var f dlqFlags
	f.registerData(fs)
	fs.BoolVar(&f.all, "all", false, "every dead letter the filters select (all of them without filters)")
	f.registerFilters(fs)
	if change.pipelines {
		f.registerPipelines(fs)
	}
	positional, code, done := parse(fs, args, stdout)
	if done {
		return code
	}
	switch {
	case len(positional) == 0 && !f.all:
		return c.usageError("name dead-letter ids (engine dlq list shows them), or pass --all, e.g. engine dlq %s --all --pipeline NAME", c.name)
	case len(positional) > 0 && f.all:
		return c.usageError("name dead-letter ids or pass --all, not both")
	case len(positional) > 0 && f.filtered():
		// Filters that quietly skipped a named id would be a surprise.
		return c.usageError("--pipeline, --reason and --since select with --all; with ids, name only the ones you mean")
	}
	ids, err := parseDeadLetterIDs(positional)
	if err != nil {
		return c.usageError("%v", err)
	}
	filter, err := f.filter(fs)
	if err != nil {
		return c.usageError("%v", err)
	}
	var state func(string) inbox.PipelineState
	pipelines := strings.Join(f.pipelines, ", ")
	if change.pipelines {
		paths := f.pipelines
		if len(paths) == 0 {
			paths, pipelines = []string{defaultPipelines}, defaultPipelines
		}
		names, err := engine.PipelineNames(paths)
		if err == nil {
			var responding []string
			responding, err = engine.RespondingPipelines(paths)
			state = func(p string) inbox.PipelineState {
				switch {
				case slices.Contains(responding, p):
					return inbox.PipelineResponds
				case slices.Contains(names, p):
					return inbox.PipelineQueues
				}
				return inbox.PipelineMissing
			}
		}
		if err != nil {
			return c.problem("--pipelines %v; name the pipeline files or folders engine run runs with --pipelines PATH, for replay to know which pipelines there are", err)
		}
	}
	s, ok := c.open(f.data)
	if !ok {
		return exitProblem
	}
	defer s.Close()
	if f.all {
		// Ids only, read from the summaries: the dead letters themselves
		// are read a chunk at a time below.
		err := s.EachDeadLetterSummary(filter, func(dl inbox.DeadLetter) error {
			ids = append(ids, dl.ID)
			return nil
		})
		if err != nil {
			return c.problem("%v", err)
		}
		if len(ids) == 0 {
			fmt.Fprintln(stdout, "no dead letters match; nothing to "+c.name)
			c.noteUnknownPipeline(s, f.pipeline)
			return exitOK
		}
	}
	interrupted, stop := dlqInterrupt()
	defer stop()
	changed, skipped, seen, result := 0, 0, 0, exitOK
	for seen < len(ids) {
		if interrupted() {
			result = c.problem("interrupted after %d of the %d dead letters; the other %d are untouched", seen, len(ids), len(ids)-seen)
			break
		}
		chunk := ids[seen:min(seen+dlqChunk, len(ids))]
		outcomes, err := change.apply(s, chunk, state)
		var left *inbox.ReplayLeftError
		if err != nil && !errors.As(err, &left) {
			result = c.problem("%v; stopped after %d of the %d dead letters", err, seen, len(ids))
			break
		}
		seen += len(chunk)
		var notQueued *inbox.NotQueuedError
		unqueued := 0
		for _, o := range outcomes {
			var nr *inbox.NotReplayableError
			var np *inbox.NoPipelineError
			switch {
			case errors.As(o.Err, &notQueued):
				unqueued++ // said once for the chunk, below
			case errors.Is(o.Err, inbox.ErrNoSuchDeadLetter):
				result = c.problem("no dead letter %d", o.ID)
			case errors.As(o.Err, &np) && np.Responds && f.all:
				fmt.Fprintf(stdout, "skipped %d (%s, %s): pipeline %s answers its callers (respond:) and takes no queued events; give it a target again and replay it, or drop it\n", o.ID, o.Pipeline, o.Reason, o.Pipeline)
				skipped++
			case errors.As(o.Err, &np) && np.Responds:
				result = c.problem("dead letter %d belongs to pipeline %s, which its file in %s now makes answer its callers (respond:): "+
					"it takes no queued events, so if it were replayed, its event would wait where nothing delivers it; it is left as it is. Give the pipeline a target again and replay it, or drop it", o.ID, o.Pipeline, pipelines)
			case errors.As(o.Err, &np) && f.all:
				fmt.Fprintf(stdout, "skipped %d (%s, %s): no file in %s defines pipeline %s; restore its file and replay it, or drop it\n", o.ID, o.Pipeline, o.Reason, pipelines, o.Pipeline)
				skipped++
			case errors.As(o.Err, &np):
				result = c.problem("dead letter %d belongs to pipeline %s, which no file in %s defines (renamed or removed?): "+
					"if it were replayed, its event would wait where nothing delivers it, so it is left as it is. Restore the file and replay it, or drop it; "+
					"if engine run runs other files, name them with --pipelines", o.ID, o.Pipeline, pipelines)
			case errors.As(o.Err, &nr) && f.all:
				// --all selects by filter, so it meets these in passing:
				// noted, not an error.
				fmt.Fprintf(stdout, "skipped %d (%s, %s): %v\n", o.ID, o.Pipeline, o.Reason, o.Err)
				skipped++
			case o.Err != nil:
				result = c.problem("dead letter %d: %v", o.ID, o.Err)
			default:
				fmt.Fprintln(stdout, change.line(o))
				changed++
			}
		}
		if unqueued > 0 {
			// The inbox cannot be written: every one after them would fail
			// the same way, each with its own line.
			result = c.problem("%d dead letters could not be queued again, and stay dead letters: %v; stopped after %d of the %d dead letters. Free space in %s and replay them again",
				unqueued, notQueued.Err, seen, len(ids), f.data)
			break
		}
		if left != nil {
			result = c.problem("%v; the next engine run or engine dlq on %s removes them once it can write there (free space), and no replay takes them before (a dead letter of an event without an id stays listed: drop it); stopped after %d of the %d dead letters",
				left, f.data, seen, len(ids))
			break
		}
	}
	fmt.Fprintln(stdout, change.summary(changed, f.data))
	if skipped > 0 {
		fmt.Fprintf(stdout, "skipped %s that cannot be replayed; left in place\n", plural(skipped, "dead letter"))
	}
	return result
}

// parseDeadLetterIDs reads ids as engine dlq list prints them, dropping
// repeats so that naming one twice does not report it missing.
func parseDeadLetterIDs(args []string) ([]uint64, error) {
	var ids []uint64
	for _, a := range args {
		id, err := strconv.ParseUint(a, 10, 64)
		if err != nil || id == 0 {
			return nil, fmt.Errorf("%q is not a dead-letter id; ids are the numbers engine dlq list shows", a)
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func writeIndentedJSON(w io.Writer, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(unescapeHTML(b.Bytes()))
	return err
}

// pretty indents s when it is JSON and returns it as it is otherwise (a
// form body, a cut-off excerpt).
func pretty(s string) string {
	var b bytes.Buffer
	if err := json.Indent(&b, []byte(strings.TrimSpace(s)), "", "  "); err != nil {
		return s
	}
	return string(unescapeHTML(b.Bytes()))
}

// unescapeHTML turns the escapes encoding/json writes for <, > and & back
// into the characters in a JSON text. The inbox stores events through
// json.Marshal, which escapes them, and "20% off \u003ccoats\u003e" is hard
// to read; the JSON means the same either way. Outside strings JSON has no
// backslashes, so every backslash starts a two-character escape.
func unescapeHTML(b []byte) []byte {
	if !bytes.Contains(b, []byte(`\u00`)) {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 == len(b) {
			out = append(out, b[i])
			continue
		}
		if b[i+1] == 'u' && i+6 <= len(b) {
			if c, ok := htmlEscapes[strings.ToLower(string(b[i+2:i+6]))]; ok {
				out = append(out, c)
				i += 5
				continue
			}
		}
		out = append(out, b[i], b[i+1])
		i++
	}
	return out
}

var htmlEscapes = map[string]byte{"003c": '<', "003e": '>', "0026": '&'}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine puts a multi-line error on one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// shorten cuts s to at most n characters, marking the cut.
func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-3]) + "..."
}

// journalDamaged says what inbox.Store.JournalDamage found. Not a crash:
// a write a crash tore is the journal's end, with nothing after it.
const journalDamaged = "the inbox journal was damaged on disk (or torn by a power cut): the events accepted in the damaged bytes are lost, those before and after them are queued; check the disk"

// hasJournal reports whether dir holds an inbox journal file that is not
// empty: an engine ran there.
func hasJournal(dir string) bool {
	for _, name := range []string{"inbox.wal.0", "inbox.wal.1"} {
		if info, err := os.Stat(filepath.Join(dir, name)); err == nil && info.Size() > 0 {
			return true
		}
	}
	return false
}
