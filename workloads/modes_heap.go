package main

// The heap modes: steady (constant live heap, high allocation rate), heap-leak
// (live heap grows every tick) and alloc-churn (many small short-lived objects).

import (
	"math/rand"
	"runtime/debug"
	"time"
)

const (
	kib       = 1 << 10
	mib       = 1 << 20
	pageBytes = 4096
	// chunkBytes is the size of the byte slices steady and heap-leak allocate.
	chunkBytes = 64 * kib
)

// sink keeps the last garbage allocation reachable until the next one, so the
// compiler cannot drop or stack-allocate it.
var sink []byte

// touchPages writes v into every page of b (and its last byte), so each page is
// resident and counted in RSS.
func touchPages(b []byte, v byte) {
	for i := 0; i < len(b); i += pageBytes {
		b[i] = v
	}
	if len(b) > 0 {
		b[len(b)-1] = v
	}
}

// newChunk allocates n bytes and writes every page.
func newChunk(n int, v byte) []byte {
	b := make([]byte, n)
	touchPages(b, v)
	return b
}

// allocGarbage allocates n bytes in chunks of at most chunkBytes, writes every
// page and drops them at once.
func allocGarbage(n int, v byte) {
	for n > 0 {
		size := chunkBytes
		if n < size {
			size = n
		}
		sink = newChunk(size, v)
		n -= size
	}
	sink = nil
}

// steadyRing is the live heap of the steady mode.
var steadyRing [][]byte

// runSteady keeps --live-mib MiB live and replaces --alloc-mib-per-tick MiB of it
// with fresh chunks every tick: a GC sawtooth with no growth.
func runSteady(c *config, rng *rand.Rand) {
	slots := c.liveMiB * mib / chunkBytes
	steadyRing = make([][]byte, slots)
	for i := range steadyRing {
		steadyRing[i] = newChunk(chunkBytes, byte(i))
	}
	live := int64(slots) * chunkBytes
	stats.liveBytes.Set(live)
	say("LIVE_FILLED live_bytes=%d", live)

	perTick := c.allocMiBPerTick * mib / chunkBytes
	var allocated int64
	ticker := time.NewTicker(c.tick)
	defer ticker.Stop()
	for n := int64(1); ; n++ {
		<-ticker.C
		for j := 0; j < perTick; j++ {
			b := newChunk(chunkBytes, byte(n+int64(j)))
			if slots > 0 {
				steadyRing[rng.Intn(slots)] = b
			} else {
				sink = b
			}
		}
		sink = nil
		allocated += int64(perTick) * chunkBytes
		stats.ticks.Set(n)
		stats.allocatedBytes.Set(allocated)
		say("TICK %d allocated_bytes=%d live_bytes=%d", n, allocated, live)
	}
}

// leaked holds everything heap-leak retains; it only ever grows.
var leaked [][]byte

// retainLeakChunk allocates size bytes, writes every page and keeps them forever.
// It is the allocation site a heap profile blames for the leak.
//
//go:noinline
func retainLeakChunk(size int, v byte) {
	leaked = append(leaked, newChunk(size, v))
}

// runHeapLeak retains --leak-kib KiB more every tick (after --leak-after) and
// allocates --garbage-kib KiB of garbage, so the live heap and RSS grow under a
// GC sawtooth, until --leak-max-mib MiB are kept (when set). The ticks are
// paced by the wall clock (pacer.go): after LEAK_START the retained bytes are
// --leak-kib times the ticks passed since, whatever CPU the process got, so a
// test can rely on the rate. With --leak-kib-per-second the retained bytes are
// that rate times the time since the leak started (each tick keeps what is due
// by its own due time), whatever the tick.
func runHeapLeak(c *config, _ *rand.Rand) {
	leakBytes := c.leakKiB * kib
	var retained int64
	started := false
	p := newPacer(c.tick)
	leakFrom := p.start.Add(c.leakAfter)
	for {
		first, last := p.next()
		for n := first; n <= last; n++ {
			// A tick leaks when it was due after --leak-after, even when it
			// runs late.
			dueAt := p.dueAt(n)
			if (leakBytes > 0 || c.leakKiBPerSecond > 0) && !dueAt.Before(leakFrom) && !leakCapped(c, retained) {
				if !started {
					started = true
					say("LEAK_START tick=%d", n)
				}
				due := int64(leakBytes)
				if c.leakKiBPerSecond > 0 {
					due = int64(float64(c.leakKiBPerSecond*kib)*dueAt.Sub(leakFrom).Seconds()) - retained
				}
				for left := due; left > 0; left -= chunkBytes {
					size := int64(chunkBytes)
					if left < size {
						size = left
					}
					retainLeakChunk(int(size), byte(n))
				}
				if due > 0 {
					retained += due
				}
				if leakCapped(c, retained) {
					say("LEAK_STOP retained_bytes=%d", retained)
				}
			}
			allocGarbage(c.garbageKiB*kib, byte(n))
			spikeTick(c, time.Now(), byte(n))
			stats.ticks.Set(n)
			stats.retainedBytes.Set(retained)
			say("TICK %d retained_bytes=%d", n, retained)
		}
	}
}

// leakCapped says whether heap-leak has kept its --leak-max-mib (never when 0).
func leakCapped(c *config, retained int64) bool {
	return c.leakMaxMiB > 0 && retained >= int64(c.leakMaxMiB)*mib
}

// spikeSet is the transient working set of heap-leak --spike-mib.
var spikeSet [][]byte

// spikeStarted is when spikeSet was last filled.
var spikeStarted time.Time

// spikeTick fills spikeSet at the start of every --spike-every period and
// drops it (returning the memory to the OS) half a period later.
func spikeTick(c *config, now time.Time, v byte) {
	if c.spikeMiB <= 0 {
		return
	}
	switch {
	case spikeSet == nil && (spikeStarted.IsZero() || now.Sub(spikeStarted) >= c.spikeEvery):
		spikeStarted = now
		spikeSet = make([][]byte, 0, c.spikeMiB*mib/chunkBytes)
		for i := 0; i < c.spikeMiB*mib/chunkBytes; i++ {
			spikeSet = append(spikeSet, newChunk(chunkBytes, v))
		}
	case spikeSet != nil && now.Sub(spikeStarted) >= c.spikeEvery/2:
		spikeSet = nil
		debug.FreeOSMemory()
	}
}

// churnObject is a small heap object with a pointer, so the GC has to mark.
type churnObject struct {
	next    *churnObject
	payload []byte
}

// churnSlots bounds the live heap of alloc-churn: at most churnSlots objects of
// at most 1 KiB payload survive (about 2 MiB).
const churnSlots = 2048

// churnLive is the small live set of alloc-churn.
var churnLive [churnSlots]*churnObject

// runAllocChurn allocates --alloc-mib-per-tick MiB per tick in objects of 64 to
// 1024 bytes; a random few replace members of a small live set, the rest die young.
func runAllocChurn(c *config, rng *rand.Rand) {
	budget := int64(c.allocMiBPerTick) * mib
	var allocs, allocBytes int64
	ticker := time.NewTicker(c.tick)
	defer ticker.Stop()
	for n := int64(1); ; n++ {
		<-ticker.C
		var prev *churnObject
		for spent := int64(0); spent < budget; {
			size := 64 + rng.Intn(1024-64+1)
			o := &churnObject{next: prev, payload: make([]byte, size)}
			o.payload[0] = byte(n)
			o.payload[size-1] = byte(size)
			prev = o
			if allocs%32 == 0 {
				prev = nil // garbage chains of at most 16 objects
			}
			if rng.Intn(8) == 0 {
				o.next = nil // a survivor keeps only itself alive
				churnLive[rng.Intn(churnSlots)] = o
			}
			allocs += 2               // the object and its payload
			spent += int64(size) + 32 // payload + the 32-byte churnObject
			allocBytes += int64(size) + 32
		}
		stats.ticks.Set(n)
		stats.allocs.Set(allocs)
		stats.allocatedBytes.Set(allocBytes)
		say("TICK %d allocs=%d alloc_bytes=%d", n, allocs, allocBytes)
	}
}
