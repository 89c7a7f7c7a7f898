package runner

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/loyalty-connector/engine/engine"
	"github.com/loyalty-connector/engine/engine/delivery"
	"github.com/loyalty-connector/engine/engine/spec"
)

// turnBatcher is a batcher of Braze's trigger pool at 250,000 requests an
// hour on a clock that moves only when told to, and open, which adds an
// open batch under key with the turn slot (zero: none). Its batches are
// flushed by hand, and must not close: nothing here can send.
func turnBatcher(t *testing.T) (*fakeClock, *delivery.Governor, *batcher, func(key string, slot time.Time) *batch) {
	c := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	g := delivery.NewGovernor(c, delivery.Limits{Pools: map[string]delivery.Limit{"trigger": delivery.PerWindow(250000, time.Hour)}})
	b, open := batcherOn(t, c, g)
	return c, g, b, open
}

// batcherOn is a batcher of another pipeline sending to g's connection.
func batcherOn(t *testing.T, c *fakeClock, g *delivery.Governor) (*batcher, func(key string, slot time.Time) *batch) {
	l := &lane{r: &Runner{clock: c}, gov: g, soft: context.Background(),
		p: &engine.Pipeline{Target: &engine.Call{Endpoint: &spec.Endpoint{RatePool: "trigger"}}}}
	b := &batcher{l: l, open: map[string]*batch{}}
	open := func(key string, slot time.Time) *batch {
		bt := &batch{counts: map[string]int{}, recipients: map[string]bool{}, members: []*member{{req: &engine.Request{Value: map[string]any{}}}}}
		if !slot.IsZero() {
			bt.slot = slot
			g.HoldTurn(bt, "trigger", slot)
		}
		bt.timer = time.AfterFunc(time.Hour, func() {})
		t.Cleanup(func() { bt.timer.Stop() })
		b.open[key] = bt
		return bt
	}
	return b, open
}

func moveClock(c *fakeClock, d time.Duration) { _ = c.Sleep(context.Background(), d) }

// A batch's turn is worked out again from the pace of the moment: fixed
// when the peer said 5 requests were left for 10 minutes, the 20th
// campaign's turn was 40 minutes away, and after the window reset to
// 250,000 an hour it, and every new campaign's batch behind it, were
// still held for half an hour (a review).
func TestBatchTurnsFollowThePace(t *testing.T) {
	c, g, b, open := turnBatcher(t)
	reset := func(d time.Duration) string { return strconv.FormatInt(c.Now().Add(d).Unix(), 10) }
	g.Observe("trigger", 201, http.Header{"X-Ratelimit-Remaining": {"5"}, "X-Ratelimit-Reset": {reset(10 * time.Minute)}})
	for range 5 {
		g.Wait(context.Background(), "trigger")
	}
	var last *batch
	for i := range 20 {
		key := fmt.Sprint("campaign", i)
		last = open(key, time.Time{})
		b.flush(key, last)
	}
	if far := last.slot.Sub(c.Now()); far < 10*time.Minute {
		t.Fatalf("setup: the 20th batch's turn is in %v, with 5 requests left for 10 minutes", far)
	}
	moveClock(c, 10*time.Minute+time.Second) // the window has reset
	g.Observe("trigger", 201, http.Header{"X-Ratelimit-Remaining": {"249999"}, "X-Ratelimit-Reset": {reset(time.Hour)}})
	for range 100 { // a busy pool: its burst is spent
		g.Wait(context.Background(), "trigger")
	}
	b.flush("campaign19", last) // its timer fires within a second
	fresh := open("new campaign", time.Time{})
	b.flush("new campaign", fresh)
	for what, bt := range map[string]*batch{"the 20th campaign's batch": last, "a new campaign's batch": fresh} {
		if d := bt.slot.Sub(c.Now()); d > 2*time.Second {
			t.Errorf("%s is held %v after the window reset to 250,000 an hour", what, d)
		}
	}
}

// While a pool's pace is learnt again (its spent window has reset, and the
// first request's answer will say what the new one holds), batches keep
// their turns: only the first goes at the token. Closed at once, every
// held batch went at each reset (a review).
func TestBatchTurnsStandWhileThePaceIsLearnt(t *testing.T) {
	c, g, b, open := turnBatcher(t)
	reset := strconv.FormatInt(c.Now().Add(time.Second).Unix(), 10)
	g.Observe("trigger", 201, http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {reset}})
	open("first", c.Now().Add(time.Second))
	second := open("second", c.Now().Add(2*time.Second))
	moveClock(c, 3*time.Second) // past both turns and the reset: the pace is unknown
	if d := g.Interval("trigger"); d != 0 {
		t.Fatalf("setup: Interval %v after a spent window's reset, want 0", d)
	}
	b.flush("second", second)
	if b.open["second"] != second {
		t.Fatal("the second batch closed at the reset, ahead of the first's turn")
	}
}

// Turns are the connection's: Braze's campaign and Canvas triggers share
// one pool, and a pipeline of each, counting its own batches only, took
// the same turns, closed its batches early and sent them to wait in the
// governor behind the other's, with what they held then.
func TestBatchTurnsAreTheConnections(t *testing.T) {
	c, g, campaigns, open := turnBatcher(t)
	reset := strconv.FormatInt(c.Now().Add(10*time.Minute).Unix(), 10)
	g.Observe("trigger", 201, http.Header{"X-Ratelimit-Remaining": {"5"}, "X-Ratelimit-Reset": {reset}})
	interval := g.Interval("trigger")
	if interval < time.Minute {
		t.Fatalf("setup: a token every %v, with 5 requests left for 10 minutes", interval)
	}
	for range 5 {
		g.Wait(context.Background(), "trigger")
	}
	for i := range 3 {
		key := fmt.Sprint("campaign", i)
		campaigns.flush(key, open(key, time.Time{}))
	}
	canvases, openCanvas := batcherOn(t, c, g)
	canvas := openCanvas("canvas", time.Time{})
	canvases.flush("canvas", canvas)
	if canvases.open["canvas"] != canvas {
		t.Fatal("the Canvas batch closed, with three campaign batches' turns ahead of it")
	}
	if ahead := canvas.slot.Sub(c.Now()); ahead < 3*interval {
		t.Errorf("the Canvas batch's turn is in %v; want after the campaigns' three, %v or more", ahead, 3*interval)
	}
}
