package main

// Wall-clock pacing for the loops whose rate a test relies on (heap-leak's
// leak, the batches of goroutine-leak and fd-leak).
//
// A time.Ticker drops ticks for a slow receiver, and a tick that comes late on
// a loaded machine (a stop-the-world GC, the 160 MiB --spike-mib fill, other
// processes on the two cores) is simply lost: the loop then leaks slower than
// --leak-kib per --tick, and by how much depends on the CPU it got, not on the
// clock. A pacer instead says how many ticks are due by the wall clock since
// the loop started; the loop does the work of every due tick, catching up at
// once after a late one, so over any stretch longer than a tick the work done
// is the rate times the time passed.

import "time"

// pacer counts the ticks due by the wall clock: tick k (from 1) is due at
// start + k*tick.
type pacer struct {
	start time.Time
	tick  time.Duration
	done  int64
}

// newPacer starts counting now; the first tick is due one interval later.
func newPacer(tick time.Duration) *pacer {
	return &pacer{start: time.Now(), tick: tick}
}

// next sleeps until the next tick is due and returns the numbers of the ticks
// due now, oldest first: one when on time, more after a late wake-up.
func (p *pacer) next() (first, last int64) {
	if wait := time.Until(p.dueAt(p.done + 1)); wait > 0 {
		time.Sleep(wait)
	}
	first = p.done + 1
	last = int64(time.Since(p.start) / p.tick)
	if last < first {
		last = first // woke a hair early: the clock says the tick is due
	}
	p.done = last
	return first, last
}

// dueAt is when tick k is due.
func (p *pacer) dueAt(k int64) time.Time {
	return p.start.Add(time.Duration(k) * p.tick)
}
