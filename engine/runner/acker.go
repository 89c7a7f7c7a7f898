package runner

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ackBatch is the most events one removal transaction takes.
const ackBatch = 2048

// ackLinger is how long the acker gathers after the first delivered event
// before it removes what it has. Each removal is a bbolt commit (which also
// moves the journalled events in), so at a few thousand events a second
// gathering saves most of them; the price is that a crash inside the
// linger sends those few events again (at least once, never lost).
const ackLinger = 20 * time.Millisecond

// ackStillFailingEvery is how often the log says again how many removals
// still fail.
const ackStillFailingEvery = 30 * time.Second

// ackRetryEvery is how often a removal that failed (a full disk) is tried
// again while nothing else is removed.
const ackRetryEvery = time.Second

// acker removes delivered events from the inbox in bulk, off the workers'
// path: a worker that waited for a transaction and its fsync for every
// event would spend most of its time waiting. An event delivered but not
// yet removed when the engine dies is delivered again after the restart
// (at least once, never lost).
type acker struct {
	store    remover
	pipeline string
	log      *slog.Logger
	ch       chan uint64
	done     chan struct{}
	left     leftRemovals

	mu     sync.Mutex
	closed bool

	// failed: delivered events whose removal failed, tried again with
	// each later removal and every ackRetryEvery, until it works. Given
	// up after the first try, they stayed in the inbox after the disk had
	// room again, and the next run sent every one of them twice (a QA run
	// with a full disk). Only run touches it.
	failed []uint64
	// failedN is len(failed), for the reload's count of undelivered events.
	failedN atomic.Int64
	// failing: the last removal tried failed; the lane's feeder holds
	// back meanwhile (lane.waitForRemovals).
	failing atomic.Bool
	toldAt  time.Time // of the last line saying removals fail
}

// remover is the part of the inbox an acker uses.
type remover interface {
	Ack(pipeline string, seqs ...uint64) error
}

// leftRemovals keeps, across the lanes of a pipeline, the delivered events
// an acker could not remove by the time it closed: the next version's
// lane must not deliver them again, and its acker goes on trying.
type leftRemovals interface {
	// leave records seqs, which err kept in the inbox.
	leave(seqs []uint64, err error)
	// removed says seqs are out of the inbox at last.
	removed(seqs []uint64)
}

// newAcker starts an acker that first tries again to remove pending, the
// removals an earlier version's acker left.
func newAcker(store remover, pipeline string, log *slog.Logger, left leftRemovals, pending []uint64) *acker {
	a := &acker{store: store, pipeline: pipeline, log: log, ch: make(chan uint64, 4*ackBatch), done: make(chan struct{}), left: left, failed: pending}
	a.failedN.Store(int64(len(pending)))
	go a.run()
	return a
}

// ack queues the removal of seq.
func (a *acker) ack(seq uint64) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		if err := a.remove([]uint64{seq}); err != nil {
			a.left.leave([]uint64{seq}, err)
		}
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
	retry := time.NewTimer(0) // the removals an earlier acker left, at once
	for {
		var retryC <-chan time.Time
		if len(a.failed) > 0 {
			retryC = retry.C
		}
		select {
		case seq, ok := <-a.ch:
			if !ok {
				if len(a.failed) > 0 {
					if err := a.retryFailed(); err != nil {
						a.left.leave(a.failed, err)
						a.failedN.Store(0) // the pipeline's set counts them now
					}
				}
				return
			}
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
			if err := a.remove(batch); err != nil {
				if len(a.failed) == 0 {
					a.toldAt = time.Now()
					a.log.Error("cannot remove delivered events from the inbox; trying again every second, and until then they would be sent again after a restart", "pipeline", a.pipeline, "events", len(batch), "first", batch[0], "error", err)
					retry.Reset(ackRetryEvery)
				}
				a.failed = append(a.failed, batch...)
				a.failedN.Store(int64(len(a.failed)))
			} else if len(a.failed) > 0 {
				_ = a.retryFailed() // the disk has room again, most likely
			}
		case <-retryC:
			if err := a.retryFailed(); err != nil {
				// Said again now and then, with the count so far: the
				// first line named only the first batch (a QA run).
				if time.Since(a.toldAt) >= ackStillFailingEvery {
					a.log.Error("still cannot remove delivered events from the inbox; trying again every second", "pipeline", a.pipeline, "events", len(a.failed), "error", err)
					a.toldAt = time.Now()
				}
				retry.Reset(ackRetryEvery)
			}
		}
	}
}

// retryFailed removes the events earlier removals could not, a batch at a
// time (the list grows as long as the disk stays full), and keeps what
// still fails.
func (a *acker) retryFailed() error {
	all := len(a.failed)
	for len(a.failed) > 0 {
		chunk := a.failed[:min(len(a.failed), ackBatch)]
		if err := a.store.Ack(a.pipeline, chunk...); err != nil {
			a.failing.Store(true)
			return err
		}
		a.left.removed(chunk)
		a.failed = a.failed[len(chunk):]
		a.failedN.Store(int64(len(a.failed)))
	}
	a.log.Info("removed the delivered events a failed removal had left in the inbox", "pipeline", a.pipeline, "events", all)
	a.failed = nil
	a.failing.Store(false)
	return nil
}

// unremoved is how many delivered events this acker could not remove yet.
func (a *acker) unremoved() int { return int(a.failedN.Load()) }

// remove retries a failed removal a few times (a disk full for a moment).
func (a *acker) remove(seqs []uint64) error {
	var err error
	for try := range 3 {
		if err = a.store.Ack(a.pipeline, seqs...); err == nil {
			a.failing.Store(false)
			return nil
		}
		a.failing.Store(true)
		time.Sleep(time.Duration(try+1) * 100 * time.Millisecond)
	}
	return err
}

// close removes what is queued, tries once more what failed, and stops.
func (a *acker) close() {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.ch)
	}
	a.mu.Unlock()
	<-a.done
}
