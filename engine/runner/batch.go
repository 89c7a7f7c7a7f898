package runner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loyalty-connector/engine/connectors/braze"
	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/delivery"
	"github.com/loyalty-connector/engine/engine/jsonval"
	"github.com/loyalty-connector/engine/engine/spec"
	"github.com/prometheus/client_golang/prometheus"
)

// trackArrays are the lists /users/track takes, each up to 75 objects
// (braze.md §3).
var trackArrays = []string{"attributes", "events", "purchases"}

// userFields are the fields of a /users/track object that say whose it
// is: external_id, braze_id or user_alias, or else email, or else phone;
// beside one of those, email and phone are profile fields like any other
// (braze.md §3),
// and how it is named (_update_existing_only). Taken for the user's
// name, an email added by an edit made the replay send an applied inc
// again, and an empty phone beside an external_id made the applied part
// unknown (a re-QA).
func userFields(o map[string]any) []string {
	var out []string
	for _, k := range []string{"external_id", "braze_id", "user_alias"} {
		if o[k] != nil {
			out = append(out, k)
		}
	}
	switch {
	case len(out) > 0:
	case o["email"] != nil: // then phone is a profile field (braze.md §3)
		out = append(out, "email")
	case o["phone"] != nil:
		out = append(out, "phone")
	}
	return append(out, "_update_existing_only")
}

// inPartSuffix names, after an array's name, the objects of it a dead
// letter's event holds that Braze applied in part (AppliedInPart).
const inPartSuffix = "_applied_in_part"

// batcher merges the requests of many events into one, as Braze allows:
// trigger sends whose fields other than recipients are equal share one
// request of up to 50 recipients; /users/track requests are packed up to
// 75 objects per array (braze.md §2-§3), and to the endpoint's MaxTotal
// for all arrays together when the connection sets one. A batch goes when
// full or when its first event has waited delivery.linger (or, if the
// connection is paused then, when the pause ends).
type batcher struct {
	l     *lane
	max   int // items per list
	total int // items of all lists together; 0: no bound but max
	track bool
	// inPart: the lists whose objects the peer applies in part when it
	// names them in an error (spec.Endpoint.AppliedInPart).
	inPart []string
	linger time.Duration
	size   prometheus.Observer // engine_batch_events, the pipeline's

	mu      sync.Mutex
	open    map[string]*batch
	flights sync.WaitGroup
}

type batch struct {
	members []*member
	counts  map[string]int // items per list field
	total   int            // items of all lists
	// recipients already in the batch: Braze sends one message per
	// recipient of a request, deduping repeats (braze.md §2), so a second
	// event for the same user must go in another request.
	recipients map[string]bool
	timer      *time.Timer
	// heldByPeer: kept open past its linger until its peer's pause or
	// spent window ends (an operator's resume can end it: reconsiderHeld).
	heldByPeer bool
	// heldForToken: it was kept open past its linger once, for a token
	// (flush).
	heldForToken bool
	// slot: when its turn at the rate limit's tokens comes (flush), also
	// held in the governor; zero when it has none.
	slot time.Time
	// heldSince: when flush first kept it open for the connection; the
	// request waits from then on, as it would in the governor, and
	// engine_rate_limit_wait_seconds_total counts it once it leaves.
	heldSince time.Time
}

type member struct {
	it         *item
	attempt    int
	req        *engine.Request
	body       map[string]any
	start      map[string]int // where its items begin in each list of the merged request (merge)
	size       map[string]int
	total      int
	recipients []string
}

func newBatcher(l *lane, e *spec.Endpoint) *batcher {
	b := &batcher{l: l, max: e.MaxBatch, track: e.Name == "users_track", linger: l.p.Delivery.Linger, open: map[string]*batch{},
		size: l.r.metrics.batchSize.WithLabelValues(l.p.Name)}
	if e.MaxTotal != nil {
		b.total = e.MaxTotal(l.p.Target.Conn)
	}
	if e.AppliedInPart != nil {
		b.inPart = e.AppliedInPart(l.p.Target.Conn)
	}
	return b
}

func (b *batcher) lists() []string {
	if b.track {
		return trackArrays
	}
	return []string{"recipients"}
}

// add queues one event's request; a request that cannot be merged (a
// broadcast, a body that is not an object) goes alone at once.
func (b *batcher) add(it *item, attempt int, req *engine.Request) {
	if b.track && it.stored != nil && len(it.stored.Delivered) > 0 && !leaveOutDelivered(req, it.stored.Delivered) {
		b.l.r.log.Info("not sent: braze took every object of its /users/track request before", "pipeline", b.l.p.Name, "version", b.l.p.Version, "event", eventLabel(it))
		b.l.ack(it, "delivered")
		return
	}
	m := &member{it: it, attempt: attempt, req: req, start: map[string]int{}, size: map[string]int{}}
	body, ok := req.Value.(map[string]any)
	mergeable := ok
	if ok {
		m.body = body
		total := 0
		for _, f := range b.lists() {
			list, isList := body[f].([]any)
			if _, present := body[f]; present && !isList {
				mergeable = false
			}
			m.size[f] = len(list)
			total += len(list)
			if len(list) > b.max {
				mergeable = false
			}
		}
		if total == 0 || (b.total > 0 && total > b.total) {
			mergeable = false
		}
		m.total = total
		if !b.track {
			list, _ := body["recipients"].([]any)
			for _, r := range list {
				m.recipients = append(m.recipients, recipientKey(r))
			}
		}
	}
	if !mergeable {
		b.flights.Add(1)
		go b.sendAlone(m)
		return
	}
	key := b.key(req, body)
	b.mu.Lock()
	bt := b.open[key]
	if bt != nil && !b.fits(bt, m) {
		b.closeLocked(key, bt)
		bt = nil
	}
	if bt == nil {
		bt = &batch{counts: map[string]int{}, recipients: map[string]bool{}}
		b.open[key] = bt
		bt.timer = time.AfterFunc(b.linger, func() { b.flush(key, bt) })
	}
	for _, f := range b.lists() {
		bt.counts[f] += m.size[f]
	}
	bt.total += m.total
	for _, r := range m.recipients {
		bt.recipients[r] = true
	}
	bt.members = append(bt.members, m)
	if b.full(bt) {
		b.closeLocked(key, bt)
	}
	b.mu.Unlock()
}

// key: requests merge when everything but their lists is equal.
func (b *batcher) key(req *engine.Request, body map[string]any) string {
	var sb strings.Builder
	sb.WriteString(req.Method + " " + req.URL + "\n")
	names := make([]string, 0, len(req.Header))
	for k := range req.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		sb.WriteString(k + ": " + strings.Join(req.Header[k], ",") + "\n")
	}
	rest := make(map[string]any, len(body))
	for k, v := range body {
		rest[k] = v
	}
	for _, f := range b.lists() {
		delete(rest, f)
	}
	// jsonval sorts map keys, so equal bodies give equal text.
	raw, _ := jsonval.Append(nil, rest)
	sb.Write(raw)
	return sb.String()
}

func (b *batcher) fits(bt *batch, m *member) bool {
	if b.total > 0 && bt.total+m.total > b.total {
		return false
	}
	for _, f := range b.lists() {
		if bt.counts[f]+m.size[f] > b.max {
			return false
		}
	}
	for _, r := range m.recipients {
		if bt.recipients[r] {
			return false
		}
	}
	return true
}

// recipientKey names who a recipient object is: its identifier fields.
// Braze finds a user by email whatever its case, so emails are compared
// in lower case. One user named by different kinds of identifier (an
// external id here, a braze_id there) cannot be recognised.
func recipientKey(r any) string {
	obj, ok := r.(map[string]any)
	if !ok {
		raw, _ := jsonval.Append(nil, r)
		return string(raw)
	}
	id := map[string]any{}
	for _, k := range []string{"external_user_id", "user_alias", "email", "braze_id"} {
		if v, ok := obj[k]; ok {
			if email, isText := v.(string); isText && k == "email" {
				v = strings.ToLower(email)
			}
			id[k] = v
		}
	}
	raw, _ := jsonval.Append(nil, id)
	return string(raw)
}

func (b *batcher) full(bt *batch) bool {
	if b.total > 0 && bt.total >= b.total {
		return true
	}
	for _, f := range b.lists() {
		if bt.counts[f] >= b.max {
			return true
		}
	}
	return false
}

// flush sends bt if it is still open under key (the linger timer fired).
// While no request could go to its pool (the connection is paused by a
// 429 or Retry-After, or the peer's window is spent) it stays open,
// filling up, until one could; while the rate limit has no token yet, it
// stays open until its turn (see below). Closed at its linger,
// each batch waited on its own: at the end of a pause several small
// requests went where one could carry them all (6 Canvas requests of
// about 5 recipients each, in a QA run, where 30 fit one), and under a
// rate limit of 1/s a steady 10 events/s went 5 to a request, a second
// apart, while a backlog grew.
func (b *batcher) flush(key string, bt *batch) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open[key] != bt {
		return
	}
	if b.l.soft.Err() != nil {
		b.closeLocked(key, bt)
		return
	}
	pool := b.l.p.Target.Endpoint.Pool(bt.members[0].req.Value)
	now := b.l.r.clock.Now()
	wait, held := b.l.gov.Ready(pool)
	switch {
	case held:
	case wait > 0 || !bt.slot.IsZero():
		// No token now, or turns taken: the batch waits for its turn, a
		// token after each of the lane's requests waiting for one and each
		// of the batcher's batches of the pool with an earlier turn, and
		// stays open until it comes. Batches of several
		// campaigns that waited for the same token each closed when it
		// came: one took it, the others waited in the governor with what
		// they had while the next batch of their campaign began (a QA run
		// under Braze's window of 20 requests per 10 s: 23 recipients a
		// request, 30 requests with 1-5). A turn reserves nothing: the
		// request still waits in the governor for its token when it goes,
		// so what the peer says meanwhile (a pause, a spent window, a
		// lower rate) holds. Worked out again at least each second from
		// the pace of the moment: fixed once, a turn taken while the peer
		// said little was left held later batches long after its window
		// had reset (a review: 30 minutes).
		switch interval := b.l.gov.Interval(pool); {
		case interval > 0:
			// Closed batches waiting in the governor come first too: left
			// out, a batch that filled up before its turn let the later
			// ones move up and go with fewer events (QA: 42.6 recipients a
			// request at 300 events/s, where they had 48.2).
			// Turns and requests are counted on the connection, for
			// every pipeline that sends to the pool (Braze's campaign and
			// Canvas triggers share one).
			ahead := b.l.gov.TurnsBefore(bt, pool, bt.slot) + b.l.gov.Queued(pool)
			if turn := now.Add(wait + time.Duration(ahead)*interval); bt.slot.IsZero() || turn.Before(bt.slot) {
				bt.slot = turn
				b.l.gov.HoldTurn(bt, pool, turn)
			}
			wait = min(bt.slot.Sub(now), time.Second)
		case !bt.slot.IsZero():
			// The pace is being learnt again (the pool's window has just
			// reset, and its first request learns what the new one
			// holds): the turns stand, and the first goes when a token is
			// there. Closed at once, every held batch went at each reset
			// (a review).
			if wait == 0 && b.l.gov.TurnsBefore(bt, pool, bt.slot) > 0 {
				wait = 10 * time.Millisecond
			}
			wait = min(wait, time.Second)
		default:
			// No rate is known yet. A wait for a token is held once:
			// requests already waiting for one take each token first, so
			// under their load a batch that waited for room until it saw
			// some would stay open for as long as they came.
			if bt.heldForToken {
				wait = 0
			}
			bt.heldForToken = true
		}
	}
	if wait > 0 {
		if bt.heldSince.IsZero() {
			bt.heldSince = now
		}
		bt.heldByPeer = held
		bt.timer.Reset(wait)
		return
	}
	b.closeLocked(key, bt)
}

// closeLocked takes bt out of the open set and sends it. Callers hold b.mu.
func (b *batcher) closeLocked(key string, bt *batch) {
	delete(b.open, key)
	bt.timer.Stop()
	if !bt.slot.IsZero() {
		b.l.gov.DropTurn(bt)
	}
	if !bt.heldSince.IsZero() {
		b.l.rateLimitWaited(b.l.r.clock.Now().Sub(bt.heldSince))
	}
	b.flights.Add(1)
	go b.send(bt)
}

func (b *batcher) flushAll() {
	b.mu.Lock()
	for key, bt := range b.open {
		b.closeLocked(key, bt)
	}
	b.mu.Unlock()
}

func (b *batcher) wait() { b.flights.Wait() }

func (b *batcher) sendAlone(m *member) {
	defer b.flights.Done()
	defer b.l.survive(m.it, m.it.turn.Load(), m.attempt, m.req)
	b.sendOwn(m)
}

// sendCarrying sends req, which carries n events, and counts it in
// engine_batch_events if it left. Each request is counted with what it
// carried: a merged request Braze refused, and then each of its events
// sent alone, are 1+n requests, and counting them as one request of n
// made the recipients per request look better than they were.
func (b *batcher) sendCarrying(req *engine.Request, n int, committed bool) sendResult {
	res := b.l.send(b.l.hard, req, committed)
	if !res.unsent && !errors.Is(res.err, errStopping) {
		b.size.Observe(float64(n))
	}
	return res
}

// settleOne settles an event with the answer to a request that carried
// it: its own, or one that holds for every event of a merged request.
func (b *batcher) settleOne(m *member, res sendResult) {
	var notSent *spec.NotSentError
	switch {
	case res.verdict == delivery.Delivered:
		b.delivered(m, &res, false)
	case errors.As(res.envelopeErr, &notSent):
		// Braze took it and sent nothing (a paused Canvas): sending it
		// again changes nothing until the Canvas resumes, and acking it
		// would lose it, so it waits among the dead letters for a replay.
		b.l.dead(m.it, m.attempt, "not_sent", notSent, m.req, &res)
	default:
		b.l.settle(m.it, m.attempt, m.req, res)
	}
}

// delivered settles an event of a request Braze accepted, reading the
// minor errors about it (merged: the request carried other events too).
// Braze processed the rest of the request: for /users/track the event
// whose objects were refused is dead-lettered, as sending it again would
// repeat its other objects; a trigger's message went out (a refused
// recipient attribute is left unset), so its event is delivered and the
// errors are logged, and a replay cannot send it twice.
func (b *batcher) delivered(m *member, res *sendResult, merged bool) {
	// An error's index is the merged request's; the event's own request,
	// which its dead letter and log lines show, has its objects from 0.
	own := func(array string, index int) (int, bool) {
		if !merged {
			return index, true
		}
		return m.owns(array, index)
	}
	b.l.cutDelivered(m.it, res)
	errs, ownErrs := minorErrors(res.body, own)
	switch {
	case len(errs) == 0:
	case b.track:
		if merged {
			part := *res
			part.body = answerPart(res.body, ownErrs)
			res = &part
		}
		cause := fmt.Errorf("braze refused part of it: %s", strings.Join(errs, "; "))
		switch known, inPart := noteDelivered(m.it, m.body, ownErrs, b.inPart); {
		case !known:
			cause = fmt.Errorf("%w; the error names no object of this event's request, so what Braze took is unknown: a replay sends every object again, and a custom event or purchase it took counts twice", cause)
		case inPart:
			cause = fmt.Errorf("%w; Braze applied the other fields of the attributes objects it names (users_track_attribute_errors: field), so a replay sends only the fields that render otherwise", cause)
		}
		b.l.dead(m.it, m.attempt, "rejected", cause, m.req, res)
		return
	default:
		// Such an error tends to come with every event (an attribute
		// Braze ignores): a line a second.
		b.l.r.logLimited(&b.l.retryLogged, "minor errors", slog.LevelWarn, slog.LevelWarn, "delivered; braze reported minor errors",
			"pipeline", b.l.p.Name, "version", b.l.p.Version, "event", eventLabel(m.it), "errors", b.l.r.opts.Masker.String(strings.Join(errs, "; ")))
	}
	b.l.ack(m.it, "delivered")
}

func (b *batcher) send(bt *batch) {
	defer b.flights.Done()
	defer b.l.surviveBatch(bt.members, turnsOf(bt.members))
	if refused := b.sendMerged(bt.members); refused != 0 {
		b.narrow(bt.members)
	}
}

// sendMerged sends members in one request and settles each with the
// answer, unless Braze refused the request in a way that may be about
// one member only: then it settles none and returns the status of the
// refusal (0 otherwise).
func (b *batcher) sendMerged(members []*member) (refused int) {
	if len(members) == 1 {
		b.sendOwn(members[0])
		return 0
	}
	merged, err := b.merge(members)
	if err != nil {
		b.eachAlone(members)
		return 0
	}
	res := b.sendCarrying(merged, len(members), slices.ContainsFunc(members, func(m *member) bool { return m.it.committed }))
	if res.pause > 0 {
		res.pauseCounted = new(atomic.Bool) // the events it carried share it
	}
	var notSent *spec.NotSentError
	var whole *spec.WholeRequestError
	switch {
	case res.verdict == delivery.Delivered:
		if lost := unclaimedErrors(res.body, members); len(lost) > 0 {
			b.l.r.log.Warn("braze reported errors about objects no event of the request holds; none is dead-lettered for them", "pipeline", b.l.p.Name, "version", b.l.p.Version,
				"events", len(members), "errors", b.l.r.opts.Masker.String(strings.Join(lost, "; ")))
		}
		for _, m := range members {
			b.delivered(m, &res, true)
		}
	case errors.As(res.envelopeErr, &notSent), errors.As(res.envelopeErr, &whole):
		// About the key, the campaign or the Canvas, which every member
		// shares: sent alone, each would be answered the same, at the
		// cost of a request each from the shared hourly pool.
		b.each(members, func(m *member) { b.settleOne(m, res) })
	case res.verdict == delivery.Reject:
		return res.status
	default:
		b.each(members, func(m *member) { b.l.settle(m.it, m.attempt, m.req, res) })
	}
	return 0
}

// narrow finds the members of a refused merged request that Braze refuses
// on their own, so that one bad event does not sink the others: by
// halves, while one half is delivered and the other refused, then each
// alone. Each went alone at once before, 50 requests from the shared
// hourly pool for one empty user id; by halves that is about a dozen, and
// when both halves are refused (several bad events) each goes alone,
// two requests more than at once. Both halves refused, one of them as too
// large (413), are each narrowed again: 75 large /users/track objects
// went alone, 78 requests where halving takes about 7, and a too large
// half beside a half with one bad event, 53 where it takes 14 (re-QAs).
func (b *batcher) narrow(members []*member) {
	if len(members) <= 3 {
		b.eachAlone(members)
		return
	}
	first, second := members[:len(members)/2], members[len(members)/2:]
	firstRefused, secondRefused := b.sendMerged(first), b.sendMerged(second)
	tooLarge := firstRefused == http.StatusRequestEntityTooLarge || secondRefused == http.StatusRequestEntityTooLarge
	switch {
	case firstRefused != 0 && secondRefused != 0 && tooLarge:
		b.narrow(first)
		b.narrow(second)
	case firstRefused != 0 && secondRefused != 0:
		b.eachAlone(members)
	case firstRefused != 0:
		b.narrow(first)
	case secondRefused != 0:
		b.narrow(second)
	}
}

// eachAlone sends each member in a request of its own; only those Braze
// refuses then are dead-lettered.
func (b *batcher) eachAlone(members []*member) {
	for _, m := range members {
		b.sendOwn(m)
	}
}

func (b *batcher) sendOwn(m *member) {
	b.settleOne(m, b.sendCarrying(m.req, 1, m.it.committed))
}

// each settles every member with settle at once. Settled one after
// another, the members of a refused or throttled batch each waited for
// an inbox commit of their own (a dead letter, a retry, a CSV row stowed
// at a stop): 50 commits in a row, where together they share one. A
// panic in one is that member's (survive), as in the batch's goroutine.
func (b *batcher) each(members []*member, settle func(*member)) {
	var wg sync.WaitGroup
	for _, m := range members {
		turn := m.it.turn.Load()
		wg.Go(func() {
			defer b.l.survive(m.it, turn, m.attempt, m.req)
			settle(m)
		})
	}
	wg.Wait()
}

// merge builds one request for members from the first one's, with the
// lists concatenated, and notes where each member's items are in it.
func (b *batcher) merge(members []*member) (*engine.Request, error) {
	first := members[0]
	body := make(map[string]any, len(first.body))
	for k, v := range first.body {
		body[k] = v
	}
	for _, f := range b.lists() {
		var all []any
		for _, m := range members {
			m.start[f] = len(all)
			if list, ok := m.body[f].([]any); ok {
				all = append(all, list...)
			}
		}
		if len(all) > 0 {
			body[f] = all
		}
	}
	// Encoded as a single event's body is (no HTML escaping), in about
	// the room its members' bodies took.
	raw, err := jsonval.Encode(body, len(first.req.Body)*len(members))
	if err != nil {
		return nil, err
	}
	return &engine.Request{Method: first.req.Method, URL: first.req.URL, Header: first.req.Header.Clone(), Body: raw, Value: body}, nil
}

// noteDelivered adds to it's stored event, for its dead letter, the
// objects of its /users/track request body that Braze took: all but those
// errs name (indexed in that request), and apart, those errs name of the
// arrays inPart lists, which Braze applied in part. An error that names no
// object leaves unknown what was taken, and then nothing is noted and it
// reports false.
func noteDelivered(it *item, body map[string]any, errs []any, inPart []string) (known, notedInPart bool) {
	if it.stored == nil || body == nil {
		return true, false
	}
	// The errors' words for each object they name.
	refused := map[string]map[int][]string{}
	for _, e := range errs {
		fields, ok := e.(map[string]any)
		if !ok {
			return false, false
		}
		array, _ := fields["input_array"].(string)
		index, isIndex := fields["index"].(int)
		if list, _ := body[array].([]any); !isIndex || !slices.Contains(trackArrays, array) || index < 0 || index >= len(list) {
			return false, false // names no object of this request: what was taken is unknown
		}
		if refused[array] == nil {
			refused[array] = map[int][]string{}
		}
		typ, _ := fields["type"].(string)
		refused[array][index] = append(refused[array][index], typ)
	}
	delivered := make(map[string][]json.RawMessage, len(trackArrays))
	for array, objects := range it.stored.Delivered { // from an earlier replay
		delivered[array] = slices.Clone(objects)
	}
	added := false
	for _, array := range trackArrays {
		list, _ := body[array].([]any)
		for i, object := range list {
			to := array
			if says, ok := refused[array][i]; ok {
				if !slices.Contains(inPart, array) {
					continue
				}
				part, applied := appliedPart(object, says)
				if !applied || onlyUser(part) {
					continue // none of it, or its user alone: nothing to leave out
				}
				to, notedInPart, object = array+inPartSuffix, true, part
			}
			if raw, err := jsonval.Encode(object, 0); err == nil {
				delivered[to] = append(delivered[to], raw)
				added = true
			}
		}
	}
	if added {
		it.stored.Delivered = delivered
		it.rec.Payload = nil // encoded again, with them
	}
	return true, notedInPart
}

// appliedPart is what Braze applied of an attributes object whose errors
// say what: its user, and the fields the errors do not name (Braze quotes
// them: "'country' must be ..."). When they name none, which fields they
// are about is unknown: then only its operations ("inc", "add", ...) are
// taken as applied, which a replay must not send again, while a field set
// to a value is sent again (setting it twice changes nothing, and one that
// was refused, sent as it was, is refused again rather than taken for
// applied). When they name a field that says who the object is for, none
// of it was applied, and it reports false.
func appliedPart(object any, says []string) (part map[string]any, ok bool) {
	o, ok := object.(map[string]any)
	if !ok {
		return nil, false
	}
	text := strings.Join(says, "\n")
	user := userFields(o)
	for _, k := range user {
		if strings.Contains(text, "'"+k+"'") {
			// About who the object is for: Braze applied none of it (the
			// sandbox answers attributes_processed 0), and taken as
			// applied, its inc was lost on replay (a QA run).
			return nil, false
		}
	}
	part = map[string]any{}
	named := false
	for k := range o {
		if strings.Contains(text, "'"+k+"'") {
			named = true
		}
	}
	for k, v := range o {
		switch {
		case slices.Contains(user, k):
		case named && strings.Contains(text, "'"+k+"'"):
			continue
		case !named && !isOperation(v):
			continue
		}
		part[k] = v
	}
	return part, true
}

// onlyUser reports whether a /users/track object holds nothing but who
// it is for.
func onlyUser(o map[string]any) bool {
	user := userFields(o)
	for k := range o {
		if !slices.Contains(user, k) {
			return false
		}
	}
	return true
}

// isOperation reports whether an attribute's value changes what Braze
// holds by what it was (braze.md §3: {"inc": n}, {"add": [...]},
// {"remove": [...]}, and the $-operations of nested arrays), so that
// applied twice it counts twice.
func isOperation(v any) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	for _, op := range []string{"inc", "add", "remove", "$add", "$remove", "$update"} {
		if _, ok := m[op]; ok {
			return true
		}
	}
	return false
}

// leaveOutDelivered takes out of a /users/track request the objects that
// render as one Braze took before (each taken one leaves out one), and
// the fields of an object of the same user that render as those of one
// Braze applied in part (an "inc" it applied would count twice), and
// reports whether any object is left to send. Objects and fields compare
// by their JSON, so one the current version renders otherwise is sent.
func leaveOutDelivered(req *engine.Request, delivered map[string][]json.RawMessage) bool {
	body, ok := req.Value.(map[string]any)
	if !ok {
		return true
	}
	left, changed := 0, false
	for _, array := range trackArrays {
		list, _ := body[array].([]any)
		// what Braze took whole that no object of the request renders as
		unmatched := slices.Clone(delivered[array])
		// Matched as rendered first, then what is left without an event's
		// or purchase's time: matched without it first, the fixed one of
		// two events of one name was left out and the one Braze took sent
		// again (a re-QA).
		kept := list
		for _, anyTime := range []bool{false, true} {
			key := func(raw []byte) string { return takenKey(array, raw, anyTime) }
			keys := make([]string, len(unmatched))
			for i, raw := range unmatched {
				keys[i] = key(raw)
			}
			todo := kept
			kept = nil
			for _, object := range todo {
				raw, err := jsonval.Encode(object, 0)
				if i := slices.Index(keys, key(raw)); err == nil && i >= 0 {
					unmatched, keys = slices.Delete(unmatched, i, i+1), slices.Delete(keys, i, i+1)
					changed = true
					continue
				}
				kept = append(kept, object)
			}
		}
		applied := delivered[array+inPartSuffix]
		if array == "attributes" {
			// An attributes object Braze took whole and the pipeline has
			// changed since (a field added, renamed or rendered otherwise):
			// the fields that render the same were applied, an inc among
			// them, and are left out one by one as for an object applied in
			// part. Sent whole, renaming one field counted an inc twice (a
			// QA run).
			applied = append(unmatched, applied...)
		}
		fewerFields := false
		if len(applied) > 0 {
			kept, fewerFields = leaveOutApplied(kept, applied)
			changed = changed || fewerFields
		}
		left += len(kept)
		if len(kept) < len(list) || fewerFields {
			if len(kept) == 0 {
				delete(body, array)
			} else {
				body[array] = kept
			}
		}
	}
	if changed && left > 0 {
		if raw, err := jsonval.Encode(body, len(req.Body)); err == nil {
			req.Body = raw
		}
	}
	return left > 0
}

// leaveOutApplied takes out of each object the fields that render as
// those of an object of the same user Braze applied (in part, or whole
// before the pipeline changed; each applied one serves one object), and
// the object if no field but its user's is left. It reports whether it
// took any out.
func leaveOutApplied(objects []any, applied []json.RawMessage) (kept []any, changed bool) {
	// Each field Braze applied, with its user and value; one serves one
	// field of one object. Matched field by field, not object by object:
	// what Braze applied of a user is spread over several objects after
	// a replay or two, and an object matched whole to the one that shared
	// the most with it sent the rest again (a re-QA: an inc counted twice).
	taken := map[string]int{}
	for _, raw := range applied {
		v, err := jsonval.Decode(raw)
		o, ok := v.(map[string]any)
		if err != nil || !ok {
			continue
		}
		user := userFields(o)
		for k, fv := range o {
			if !slices.Contains(user, k) {
				taken[appliedField(o, k, fv)]++
			}
		}
	}
	for _, object := range objects {
		o, ok := object.(map[string]any)
		if !ok {
			kept = append(kept, object)
			continue
		}
		fewer := map[string]any{}
		own, left := 0, false
		user := userFields(o)
		for k, v := range o {
			if !slices.Contains(user, k) {
				if key := appliedField(o, k, v); taken[key] > 0 {
					taken[key]--
					left = true
					continue
				}
				own++
			}
			fewer[k] = v
		}
		switch {
		case !left:
			kept = append(kept, object)
		case own > 0:
			kept = append(kept, fewer)
		}
		changed = changed || left
	}
	return kept, changed
}

// appliedField names field k, set to v, of a /users/track object's user.
func appliedField(o map[string]any, k string, v any) string {
	var b strings.Builder
	for _, id := range userFields(o) {
		if id == "_update_existing_only" { // how, not who
			continue
		}
		raw, _ := jsonval.Encode(sameContact(id, o[id]), 0)
		b.WriteString(id + "=" + canonicalJSON(raw) + "\x00")
	}
	raw, _ := jsonval.Encode(v, 0)
	b.WriteString(k + "\x00" + canonicalJSON(raw))
	return b.String()
}

// takenKey is what an object of array must render as again to be one
// Braze took: the whole object, its email and phone as Braze matches them
// (sameContact), and an event's or a purchase's time as the instant it
// names, or, with anyTime, whatever it is: a template often renders it
// from 'now', so that it renders otherwise at each replay, and the event
// Braze took counted twice (re-QAs, also for a time written otherwise and
// an email in another case).
func takenKey(array string, raw []byte, anyTime bool) string {
	v, err := jsonval.Decode(raw)
	o, ok := v.(map[string]any)
	if err != nil || !ok {
		return canonicalJSON(raw)
	}
	for _, k := range []string{"email", "phone"} {
		if o[k] != nil {
			o[k] = sameContact(k, o[k])
		}
	}
	if array != "attributes" {
		if s, ok := o["time"].(string); ok && !anyTime {
			if t, ok := braze.ParseTime(s); ok {
				o["time"] = t.Format(time.RFC3339Nano)
			}
		}
		if anyTime {
			delete(o, "time")
		}
	}
	out, err := jsonval.Encode(o, 0)
	if err != nil {
		return canonicalJSON(raw)
	}
	return string(out)
}

// sameContact is an email or phone as Braze matches it: an email whatever
// its case, a phone by its digits (and a leading +); any other field's
// value as it is.
func sameContact(field string, v any) any {
	s, ok := v.(string)
	switch {
	case ok && field == "email":
		return strings.ToLower(s)
	case !ok || field != "phone":
		return v
	}
	return strings.Map(func(r rune) rune {
		if r == '+' || (r >= '0' && r <= '9') {
			return r
		}
		return -1
	}, s)
}

// canonicalJSON is raw as Decode then Encode give it, so that an object
// and its copy kept as a dead letter's JSON (which escapes <, > and &)
// compare equal.
func canonicalJSON(raw []byte) string {
	v, err := jsonval.Decode(raw)
	if err != nil {
		return string(raw)
	}
	out, err := jsonval.Encode(v, len(raw))
	if err != nil {
		return string(raw)
	}
	return string(out)
}

// minorError is one of Braze's non-fatal errors ({"type", "input_array",
// "index"}, braze.md §3), as written (value) and read.
type minorError struct {
	value any
	text  string // for an error without an index
	typ   string
	array string
	index *int // nil: not about one object it names
}

// readMinorErrors reads the errors of a Braze answer; nil for the usual
// answer, which has none.
func readMinorErrors(body []byte) []minorError {
	if !bytes.Contains(body, []byte(`"errors"`)) {
		return nil // the usual answer: nothing to decode
	}
	var answer struct {
		Errors []json.RawMessage `json:"errors"`
	}
	if json.Unmarshal(body, &answer) != nil {
		return nil
	}
	var out []minorError
	for _, raw := range answer.Errors {
		var e struct {
			Type       string `json:"type"`
			InputArray string `json:"input_array"`
			Index      *int   `json:"index"`
		}
		var v any
		if json.Unmarshal(raw, &v) != nil {
			continue
		}
		if json.Unmarshal(raw, &e) != nil || e.Index == nil {
			text, isText := v.(string)
			if !isText {
				text = string(bytes.TrimSpace(raw))
			}
			out = append(out, minorError{value: v, text: text})
			continue
		}
		out = append(out, minorError{value: v, typ: e.Type, array: e.InputArray, index: e.Index})
	}
	return out
}

// minorErrors returns, as text and as Braze wrote them, the errors own
// claims, with the index own gives. Errors without an index (plain
// strings) belong to everyone, and for /users/track leave unknown what
// was taken.
func minorErrors(body []byte, own func(array string, index int) (int, bool)) (texts []string, errs []any) {
	for _, e := range readMinorErrors(body) {
		if e.index == nil {
			texts = append(texts, e.text)
			errs = append(errs, e.value)
			continue
		}
		index, ok := own(e.array, *e.index)
		if !ok {
			continue
		}
		texts = append(texts, fmt.Sprintf("%s[%d]: %s", e.array, index, e.typ))
		fields := e.value.(map[string]any) // an object: it has an index
		fields["index"] = index
		errs = append(errs, fields)
	}
	return texts, errs
}

// owns says whether the object at index of a merged request's array is
// m's, and its index in m's own request.
func (m *member) owns(array string, index int) (int, bool) {
	i := index - m.start[array]
	return i, i >= 0 && i < m.size[array]
}

// unclaimedErrors are the errors of a merged request's answer that name an
// object no member holds (an index past the request's, an array it did
// not send): no event can be dead-lettered for them, so they are logged.
func unclaimedErrors(body []byte, members []*member) []string {
	var out []string
	for _, e := range readMinorErrors(body) {
		if e.index == nil {
			continue // every member's
		}
		claimed := false
		for _, m := range members {
			_, mine := m.owns(e.array, *e.index)
			claimed = claimed || mine
		}
		if !claimed {
			out = append(out, fmt.Sprintf("%s[%d]: %s", e.array, *e.index, e.typ))
		}
	}
	return out
}

// answerPart is Braze's answer to a merged request cut down to one event's
// part, for its dead letter: its own errors, indexed in its own request,
// and no counts of objects processed, which are the whole request's.
func answerPart(body []byte, errs []any) []byte {
	var answer map[string]any
	if json.Unmarshal(body, &answer) != nil {
		return body
	}
	for k := range answer {
		if strings.HasSuffix(k, "_processed") {
			delete(answer, k)
		}
	}
	answer["errors"] = errs
	part, err := jsonval.Encode(answer, len(body))
	if err != nil {
		return body
	}
	return part
}
