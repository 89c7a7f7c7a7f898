package runner

import (
	"log/slog"
	"sync"
	"time"

	"github.com/loyalty-connector/engine/engine/inbox"
)

// ackBatch is the most events one removal transaction takes.
const ackBatch = 2048

// ackLinger is how long the acker gathers after the first delivered event
// before it removes what it has. Each removal is a bbolt commit (which also
// moves the journalled events in), so at a few thousand events a second
// gathering saves most of them; the price is that a crash inside the
// linger sends those few events again (at least once, never lost).
const ackLinger = 20 * time.Millisecond

// acker removes delivered events from the inbox in bulk, off the workers'
// path: a worker that waited for a transaction and its fsync for every
// event would spend most of its time waiting. An event delivered but not
// yet removed when the engine dies is delivered again after the restart
// (at least once, never lost).
type acker struct {
	store    *inbox.Store
	pipeline string
	log      *slog.Logger
	ch       chan uint64
	done     chan struct{}

	mu     sync.Mutex
	closed bool
}

func newAcker(store *inbox.Store, pipeline string, log *slog.Logger) *acker {
	a := &acker{store: store, pipeline: pipeline, log: log, ch: make(chan uint64, 4*ackBatch), done: make(chan struct{})}
	go a.run()
	return a
}

// ack queues the removal of seq.
func (a *acker) ack(seq uint64) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		a.remove([]uint64{seq})
		return
	}
	// Sent under the lock, so close cannot race the send.
	a.ch <- seq
	a.mu.Unlock()
}

// run gathers for ackLinger after the first delivered event, or until a
// batch is full, and removes what it has in one transaction.
func (a *acker) run() {
	defer close(a.done)
	batch := make([]uint64, 0, ackBatch)
	linger := time.NewTimer(ackLinger)
	for seq := range a.ch {
		batch = append(batch[:0], seq)
		linger.Reset(ackLinger)
	gather:
		for len(batch) < ackBatch {
			select {
			case s, ok := <-a.ch:
				if !ok {
					break gather
				}
				batch = append(batch, s)
			case <-linger.C:
				break gather
			}
		}
		a.remove(batch)
	}
}

// remove retries a failed removal a few times (a disk full for a moment);
// what still fails is delivered again after a restart, never lost.
func (a *acker) remove(seqs []uint64) {
	var err error
	for try := range 5 {
		if err = a.store.Ack(a.pipeline, seqs...); err == nil {
			return
		}
		time.Sleep(time.Duration(try+1) * 200 * time.Millisecond)
	}
	a.log.Error("cannot remove delivered events from the inbox; they will be sent again after a restart", "pipeline", a.pipeline, "events", len(seqs), "first", seqs[0], "error", err)
}

// close removes what is queued and stops.
func (a *acker) close() {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.ch)
	}
	a.mu.Unlock()
	<-a.done
}
