package main

// The setup modes that leak something other than heap bytes: goroutine-leak,
// map-bloat and fd-leak. Each sets up, prints its marker lines and SETUP_DONE,
// and returns; what it leaked stays until the process exits.

import (
	"fmt"
	"math/rand"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"
)

// leakyWorkersArrived counts the leakyWorker goroutines that have reached their
// receive, so a batch is announced only once its goroutines are (about to be)
// parked and a dump taken after the marker line shows all of them there.
var leakyWorkersArrived int64

// leakyWorker blocks forever receiving from ch. Nothing ever sends on ch and no
// running goroutine can reach it, so the goroutine is provably leaked.
//
//go:noinline
func leakyWorker(ch <-chan struct{}) {
	atomic.AddInt64(&leakyWorkersArrived, 1)
	<-ch
}

// waitLeakyWorkersArrived waits until total leakyWorker goroutines have reached
// their receive, then yields a little more so the last ones finish parking.
func waitLeakyWorkersArrived(total int) {
	for atomic.LoadInt64(&leakyWorkersArrived) < int64(total) {
		time.Sleep(time.Millisecond)
	}
	for i := 0; i < 10; i++ {
		runtime.Gosched()
	}
	time.Sleep(10 * time.Millisecond)
}

// leakyWorkerSpawner starts n leakyWorker goroutines, each on its own channel that
// is created here and dropped when this function returns: the "created by" site
// of the leaked goroutines.
//
//go:noinline
func leakyWorkerSpawner(n int) {
	for i := 0; i < n; i++ {
		ch := make(chan struct{})
		go leakyWorker(ch)
	}
}

// runGoroutineLeak leaks --goroutines goroutines, all at once or --goroutine-rate
// per tick, printing GOROUTINES_LEAKED <running total> after each batch.
func runGoroutineLeak(c *config, _ *rand.Rand) {
	sleepFor(c.setupAfter)
	total := 0
	forEachBatch(c, c.goroutines, c.goroutineRate, func(batch int) {
		if c.leakDepth > 0 {
			deepLeakyWorkerSpawner(batch, c.leakDepth)
		} else {
			leakyWorkerSpawner(batch)
		}
		total += batch
		waitLeakyWorkersArrived(total)
		stats.goroutinesLeaked.Set(int64(total))
		say("GOROUTINES_LEAKED %d", total)
	})
	say("SETUP_DONE")
}

// forEachBatch calls do with batches that add up to total: one batch when rate is
// 0 (or at least total), else rate per tick, the ticks paced by the wall clock
// (pacer.go: batches due while the process was held up come at once). With
// total 0 it calls do(0) once, so the marker line is printed in every case.
func forEachBatch(c *config, total, rate int, do func(batch int)) {
	if rate <= 0 || rate >= total {
		do(total)
		return
	}
	done := 0
	oneBatch := func() {
		batch := rate
		if total-done < batch {
			batch = total - done
		}
		do(batch)
		done += batch
	}
	p := newPacer(c.tick)
	oneBatch()
	for done < total {
		first, last := p.next()
		for n := first; n <= last && done < total; n++ {
			oneBatch()
		}
	}
}

// mapHolder holds a map two fields deep (map-bloat fills it with --map-keep entries).
var mapHolder struct {
	name  string
	inner struct{ keys map[string]int }
}

// bloatedMap is the map-bloat map: filled, then mostly emptied, kept for good.
var bloatedMap map[int64][64]byte

// reachNode holds a map behind a pointer; next closes a cycle back to itself.
type reachNode struct {
	name   string
	counts map[string]int
	next   *reachNode
}

// Maps only reachable through the program's live data, for readers that
// follow pointers, array and slice elements and map values (memlens maps).
var (
	reachPtr     *reachNode                // main.reachPtr.counts (through a pointer; next is a cycle)
	reachArray   [3]map[int32]int64        // main.reachArray[1]
	reachSlice   []map[string]int          // main.reachSlice[i], --reach-maps of them
	reachNested  map[string]map[int]string // main.reachNested["alpha"]
	reachByID    map[int64]*reachNode      // main.reachByID[7].counts
	reachGrowing map[int]int               // 6657 entries: a classic map caught growing
)

// fillReachMaps builds the reach* maps (--reach-maps maps in reachSlice) and
// prints each one's header read (a few of reachSlice's).
func fillReachMaps(n int) {
	reachPtr = &reachNode{name: "ptr", counts: map[string]int{}}
	reachPtr.next = reachPtr
	for i := 0; i < 20; i++ {
		reachPtr.counts["k"+strconv.Itoa(i)] = i
	}
	sayHeader("main.reachPtr.counts", unsafe.Pointer(&reachPtr.counts), 0)
	reachArray[1] = map[int32]int64{}
	for i := int32(0); i < 100; i++ {
		reachArray[1][i] = int64(i)
	}
	sayHeader("main.reachArray[1]", unsafe.Pointer(&reachArray[1]), 0)
	reachSlice = make([]map[string]int, n)
	for i := range reachSlice {
		reachSlice[i] = map[string]int{}
		for j := 0; j <= i%50; j++ {
			reachSlice[i][strconv.Itoa(j)] = j
		}
		if i < 3 {
			sayHeader(fmt.Sprintf("main.reachSlice[%d]", i), unsafe.Pointer(&reachSlice[i]), 0)
		}
	}
	reachNested = map[string]map[int]string{"alpha": {}, "beta": {}}
	for i := 0; i < 300; i++ {
		reachNested["alpha"][i] = "a"
	}
	reachNested["beta"][1] = "b"
	for _, k := range []string{"alpha", "beta"} {
		inner := reachNested[k]
		sayHeader(fmt.Sprintf("main.reachNested[%q]", k), unsafe.Pointer(&inner), 0)
	}
	node := &reachNode{name: "seven", counts: map[string]int{}}
	for i := 0; i < 9; i++ {
		node.counts[strconv.Itoa(i)] = i
	}
	reachByID = map[int64]*reachNode{7: node}
	sayHeader("main.reachByID[7].counts", unsafe.Pointer(&node.counts), 0)
	reachGrowing = make(map[int]int)
	for i := 0; i < 6657; i++ {
		reachGrowing[i] = i
	}
	sayHeader("main.reachGrowing", unsafe.Pointer(&reachGrowing), 0)
}

// sayHeader prints the header read of the map variable at m (groupBytes: the
// size of one Swiss group of its type, to count tombstones; 0 not to).
func sayHeader(path string, m unsafe.Pointer, groupBytes uintptr) {
	h := readMapHeader(m)
	extra := ""
	switch {
	case h.layout == "classic":
		extra = fmt.Sprintf(" old_buckets=%d evacuated=%d", h.oldBuckets, h.evacuated)
	case h.layout == "swiss" && groupBytes > 0:
		extra = fmt.Sprintf(" tombstones=%d", swissTombstones(m, groupBytes))
	}
	say("MAP_HEADER var=%s len=%d capacity=%d%s layout=%s", path, h.length, h.capacity, extra, h.layout)
}

// runMapBloat inserts --map-entries entries into a map with no size hint (it
// grows as a real service's would), deletes all but --map-keep of them and
// collects garbage: the map keeps its full-size bucket array.
func runMapBloat(c *config, _ *rand.Rand) {
	sleepFor(c.setupAfter)
	// A map in a field of a package-level struct, for readers that follow fields.
	mapHolder.inner.keys = make(map[string]int)
	for i := 0; i < c.mapKeep; i++ {
		mapHolder.inner.keys[strconv.Itoa(i)] = i
	}
	sayHeader("main.mapHolder.inner.keys", unsafe.Pointer(&mapHolder.inner.keys), 0)
	fillReachMaps(c.reachMaps)
	bloatedMap = make(map[int64][64]byte)
	for i := 0; i < c.mapEntries; i++ {
		var v [64]byte
		v[0], v[31], v[63] = byte(i), byte(i>>8), byte(i>>16)
		bloatedMap[int64(i)] = v
	}
	stats.mapEntries.Set(int64(len(bloatedMap)))
	say("MAP_FULL entries=%d", len(bloatedMap))
	sayMapHeader()

	sleepFor(c.shrinkAfter)
	keep := int64(c.mapKeep)
	for k := range bloatedMap {
		if k >= keep {
			delete(bloatedMap, k)
		}
	}
	runtime.GC()
	stats.mapEntries.Set(int64(len(bloatedMap)))
	say("MAP_SHRUNK entries=%d", len(bloatedMap))
	sayMapHeader()
	say("SETUP_DONE")
}

// sayMapHeader prints bloatedMap's length and capacity as its runtime header
// holds them (mapheader.go), for outside readers to compare against.
func sayMapHeader() {
	// A Swiss group: 8 control bytes, then 8 slots of key and value.
	type slot struct {
		key  int64
		elem [64]byte
	}
	sayHeader("main.bloatedMap", unsafe.Pointer(&bloatedMap), 8+8*unsafe.Sizeof(slot{}))
}

// leakedFiles keeps every file fd-leak opens reachable, so no finalizer closes it.
var leakedFiles []*os.File

// openLeakedFiles opens /dev/null n times and keeps the files forever.
//
//go:noinline
func openLeakedFiles(n int) {
	for i := 0; i < n; i++ {
		f, err := os.Open(os.DevNull)
		if err != nil {
			fatal("fd-leak: after %d files: %v", len(leakedFiles), err)
		}
		leakedFiles = append(leakedFiles, f)
	}
}

// runFDLeak opens --fds files, all at once or --fd-rate per tick, printing
// FDS_OPEN <running total> after each batch.
func runFDLeak(c *config, _ *rand.Rand) {
	sleepFor(c.setupAfter)
	forEachBatch(c, c.fds, c.fdRate, func(batch int) {
		openLeakedFiles(batch)
		stats.fdsOpen.Set(int64(len(leakedFiles)))
		say("FDS_OPEN %d", len(leakedFiles))
	})
	say("SETUP_DONE")
}

// deepLeakyWorkerSpawner is leakyWorkerSpawner with depth extra frames under
// each goroutine (--leak-depth).
//
//go:noinline
func deepLeakyWorkerSpawner(n, depth int) {
	for i := 0; i < n; i++ {
		ch := make(chan struct{})
		go leakyWorkerDeep(ch, depth)
	}
}

// leakyWorkerDeep calls down depth leakDeeper frames, then blocks in leakyWorker.
//
//go:noinline
func leakyWorkerDeep(ch <-chan struct{}, depth int) {
	leakDeeper(ch, depth)
}

//go:noinline
func leakDeeper(ch <-chan struct{}, depth int) {
	if depth <= 1 {
		leakyWorker(ch)
		return
	}
	leakDeeper(ch, depth-1)
}
