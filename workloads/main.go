// Command workload reproduces, on purpose and deterministically, the Go memory
// incidents memlens must recognise. It uses the standard library only and builds
// with Go 1.19 and with current Go (go.mod says go 1.19).
//
// # Usage
//
//	workload --mode MODE [flags]
//
// Flags may be written -flag or --flag, with "=value" or " value".
//
// Common flags:
//
//	--mode MODE            steady | heap-leak | goroutine-leak | map-bloat |
//	                       fd-leak | alloc-churn | mmap | hostile | level-off |
//	                       file-thrash (required)
//	--addr HOST:PORT       where pprof and expvar are served (default 127.0.0.1:0)
//	--duration D           hard bound on the run; then prints DONE and exits 0
//	                       (default 60s; 0 = run until killed or signalled)
//	--tick D               interval of the periodic work (default 100ms); heap-leak
//	                       and the batches of goroutine-leak and fd-leak are paced
//	                       by the wall clock (pacer.go: ticks due while the process
//	                       was held up are done at once), steady and alloc-churn by
//	                       a time.Ticker (a late tick is dropped: no burst of work
//	                       on a machine that is already short of CPU)
//	--seed N               seed of the random choices (default 1)
//	--setup-after D        setup modes (goroutine-leak, map-bloat, fd-leak, mmap):
//	                       wait D after READY before the setup starts (default 0)
//	--memory-limit-mib N   debug.SetMemoryLimit(N MiB) at start: a memory limit set
//	                       in code, not in the environment (default 0 = none)
//	--metrics              also serve /metrics (Prometheus text): go_gc_gomemlimit_bytes
//	                       and go_gc_gogc_percent as the runtime reports them, and the
//	                       go_memstats_* heap gauges (memlimit.go)
//	--fill-address-space-mib N
//	                       after READY, before the mode starts: reserve the free
//	                       address space between the mappings below [stack] with
//	                       PROT_NONE mappings (no memory), leaving no free range of
//	                       N MiB or more (N/4 MiB at both ends of each range filled);
//	                       prints ADDRESS_SPACE_FILLED (default 0 = off). The Go heap
//	                       can then grow only into the ranges left: for small heaps.
//
// Mode flags:
//
//	steady:         --live-mib N (32)  --alloc-mib-per-tick N (16)
//	heap-leak:      --leak-kib N (1024) --garbage-kib N (4096) --leak-after D (0)
//	                --leak-kib-per-second N (0): wall-clock paced instead of per tick
//	                --spike-mib N (0) --spike-every D (20s) --leak-max-mib N (0)
//	alloc-churn:    --alloc-mib-per-tick N (16)
//	goroutine-leak: --goroutines N (100) --goroutine-rate N per tick (0 = all at once)
//	                --leak-depth N (0): extra frames under each leaked goroutine
//	map-bloat:      --map-entries N (1000000) --map-keep N (1000) --shrink-after D (0)
//	                --reach-maps N (3): maps in main.reachSlice
//	fd-leak:        --fds N (100) --fd-rate N per tick (0 = all at once)
//	mmap:           --mappings K (100) --mapping-kib N (64)
//	hostile:        --hostile-mib N (500)
//	level-off:      --plateau-mib N (100) --climb-for D (60s) --garbage-kib N (4096)
//	file-thrash:    --heap-mib N (160) --file-dir DIR (required) --file-mib N (128)
//	                --thrash-for D (60s) --thrash-mib-per-second N (64)
//
// # What each mode does
//
//	steady          a ring of --live-mib MiB of 64 KiB chunks; every tick replaces
//	                --alloc-mib-per-tick MiB of random chunks with fresh, written ones:
//	                a GC sawtooth around a constant live heap.
//	heap-leak       every tick keeps --leak-kib KiB more (64 KiB chunks, every page
//	                written, so RSS grows) and throws away --garbage-kib KiB.
//	                Allocation site of the leak: main.retainLeakChunk.
//	                With --spike-mib N, a batch job's working set on top: N MiB
//	                (written) held for the first half of every --spike-every, then
//	                dropped and returned to the OS (debug.FreeOSMemory): a
//	                sawtooth of N MiB in RSS that the kernel sees.
//	                With --leak-max-mib N > 0 it stops retaining once N MiB are
//	                kept (prints LEAK_STOP): a heap that grows, then levels off.
//	alloc-churn     many small objects (64..1024 bytes) per tick, live heap < 4 MiB.
//	goroutine-leak  --goroutines goroutines blocked forever receiving from a channel
//	                nobody can send to: function main.leakyWorker, created by
//	                main.leakyWorkerSpawner (Go 1.26+ goroutineleak profile finds them).
//	                With --leak-depth N > 0 they are created by main.deepLeakyWorkerSpawner
//	                and block N main.leakDeeper frames below main.leakyWorkerDeep (a
//	                realistic stack depth: ?debug=2 then passes 64 MiB sooner).
//	map-bloat       fills a map[int64][64]byte, then deletes all but --map-keep
//	                entries; the map keeps its buckets (it never shrinks).
//	fd-leak         opens /dev/null --fds times and never closes the files.
//	mmap            K anonymous private read-write mappings of --mapping-kib KiB,
//	                each between unmapped one-page holes so none merge: the VMA count
//	                in /proc/PID/maps rises by exactly K. Every page is written.
//	hostile-profile /debug/pprof/heap serves a hand-built heap profile whose
//	                function and file names carry <script>/onerror payloads
//	                (modes_hostile_profile.go)
//	hostile         debug endpoints that misbehave: the pprof index answers, but
//	                /debug/vars streams --hostile-mib MiB of never-ending JSON and
//	                the heap and goroutine profiles never answer.
//	level-off       retains --plateau-mib MiB in 64 KiB chunks (main.retainPlateauChunk)
//	                over --climb-for, paced by the wall clock (a late tick catches
//	                up), then holds it; --garbage-kib KiB of garbage every tick. A
//	                heap that climbs and levels off (modes_pressure.go).
//	file-thrash     holds --heap-mib MiB of written heap, writes a --file-mib MiB
//	                file in --file-dir (its page cache charged to the workload's
//	                cgroup), maps it with MADV_RANDOM (no readahead) and for
//	                --thrash-for touches one byte per page of it in a scattered
//	                order at --thrash-mib-per-second (wall clock); then
//	                unmaps it and stays calm. In a cgroup whose limit leaves less
//	                than the file beside the heap, the kernel reclaims the file's
//	                pages and refaults them: thrashing, then calm.
//
// # Output protocol (stdout, one line per event, written at once, never buffered)
//
//	LISTEN 127.0.0.1:PORT at_unix_ns=T
//	                             first line: the loopback address of the HTTP server
//	                             and the wall-clock time (Unix ns) its listen() returned
//	PID <pid>
//	MODE <mode> go=<runtime version>
//	READY                        the server answers; the mode starts now
//	ADDRESS_SPACE_FILLED reserved_bytes=R largest_gap_bytes=G
//	                             with --fill-address-space-mib only, right after
//	                             READY: R bytes reserved; G is the largest free range
//	                             left between mappings below [stack] (/proc/self/maps)
//	LIVE_FILLED live_bytes=N     steady: the live ring is in place
//	TICK <n> allocated_bytes=N live_bytes=N     steady, every tick
//	LEAK_START tick=<n>          heap-leak: the first tick that retains memory
//	TICK <n> retained_bytes=N    heap-leak, every tick (N = bytes kept so far)
//	LEAK_STOP retained_bytes=N   heap-leak --leak-max-mib: the last tick that retained
//	TICK <n> allocs=N alloc_bytes=N             alloc-churn, every tick (cumulative)
//	GOROUTINES_LEAKED <n>        goroutine-leak, after each batch (n = running total)
//	MAP_FULL entries=N           map-bloat, after the fill
//	MAP_SHRUNK entries=K         map-bloat, after the deletes and a runtime.GC()
//	MAP_HEADER var=PATH len=N capacity=C [old_buckets=O evacuated=E | tombstones=T] layout=classic|swiss
//	                             map-bloat: each main.reach*/mapHolder map before
//	                             MAP_FULL, main.bloatedMap after MAP_FULL and after
//	                             MAP_SHRUNK: the map's length and slots read from
//	                             its own runtime header through unsafe
//	                             (mapheader.go); classic maps: old buckets of a
//	                             growing map; bloatedMap on Swiss maps: tombstones
//	FDS_OPEN <n>                 fd-leak, after each batch (n = running total)
//	MAPPINGS <K> vmas_before=X vmas_after=Y     mmap (lines of /proc/self/maps)
//	CLIMB_START                  level-off: the climb starts
//	PLATEAU retained_bytes=N     level-off: the climb is over, N bytes retained
//	TICK <n> retained_bytes=N    level-off, every tick
//	HEAP_HELD heap_bytes=N       file-thrash: the heap is written
//	FILE_WRITTEN path=P file_bytes=N            file-thrash: the file is synced
//	THRASH_START                 file-thrash: the reading loop starts
//	THRASH_END touched_bytes=N passes=K checksum=C
//	                             file-thrash: --thrash-for passed, file unmapped
//	CALM                         file-thrash: nothing more is read; the heap stays
//	SETUP_DONE                   setup modes: the setup is complete (after the last
//	                             marker line above)
//	ERROR <text>                 setup failed; the process exits 1
//	DONE                         --duration passed; the process exits 0 right after
//	DONE signal=<name>           SIGINT or SIGTERM; the process exits 0 right after
//
// Nothing is printed after DONE. Diagnostics go to stderr, where the runtime also
// writes gctrace when GODEBUG=gctrace=1 (GOGC, GOMEMLIMIT and GODEBUG are honoured
// and never overridden).
//
// # HTTP
//
// net/http/pprof under /debug/pprof/ and expvar under /debug/vars. The expvar map
// "workload" holds mode, ticks, retained_bytes, live_bytes, allocated_bytes,
// allocs, goroutines_leaked, map_entries, fds_open, mappings, mapping_bytes,
// vmas_before and vmas_after.
package main

import (
	"expvar"
	"flag"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// config holds the parsed command line.
type config struct {
	mode       string
	addr       string
	duration   time.Duration
	tick       time.Duration
	seed       int64
	setupAfter time.Duration

	liveMiB         int
	allocMiBPerTick int

	leakKiB    int
	garbageKiB int
	leakAfter  time.Duration
	// leakKiBPerSecond, when > 0, paces heap-leak by the wall clock instead
	// of --leak-kib per tick (see runHeapLeak).
	leakKiBPerSecond int
	leakMaxMiB       int
	spikeMiB         int
	spikeEvery       time.Duration

	goroutines    int
	goroutineRate int
	leakDepth     int

	mapEntries  int
	mapKeep     int
	reachMaps   int
	shrinkAfter time.Duration

	fds    int
	fdRate int

	mappings   int
	mappingKiB int

	hostileMiB int

	memoryLimitMiB int
	metrics        bool

	fillAddressSpaceMiB int
}

// modes maps each --mode to the function that runs it. A mode function returns
// when its setup is done (setup modes) or never (periodic modes); either way the
// process lives until --duration passes.
var modes = map[string]func(c *config, rng *rand.Rand){
	"steady":          runSteady,
	"heap-leak":       runHeapLeak,
	"alloc-churn":     runAllocChurn,
	"goroutine-leak":  runGoroutineLeak,
	"map-bloat":       runMapBloat,
	"fd-leak":         runFDLeak,
	"mmap":            runMmap,
	"hostile":         runHostile,
	"hostile-profile": runHostileProfile,
	"level-off":       runLevelOff,
	"file-thrash":     runFileThrash,
}

// parseFlags reads the command line into a config, exiting 2 on a bad flag.
func parseFlags() *config {
	c := &config{}
	fs := flag.NewFlagSet("workload", flag.ExitOnError)
	fs.StringVar(&c.mode, "mode", "", "steady | heap-leak | goroutine-leak | map-bloat | fd-leak | alloc-churn | mmap | hostile | hostile-profile")
	fs.StringVar(&c.addr, "addr", "127.0.0.1:0", "address of the pprof/expvar HTTP server")
	fs.DurationVar(&c.duration, "duration", 60*time.Second, "hard bound on the run (0 = until killed)")
	fs.DurationVar(&c.tick, "tick", 100*time.Millisecond, "interval of the periodic work")
	fs.Int64Var(&c.seed, "seed", 1, "seed of the random choices")
	fs.DurationVar(&c.setupAfter, "setup-after", 0, "setup modes: delay between READY and the setup")
	fs.IntVar(&c.liveMiB, "live-mib", 32, "steady: live heap in MiB")
	fs.IntVar(&c.allocMiBPerTick, "alloc-mib-per-tick", 16, "steady, alloc-churn: MiB allocated per tick")
	fs.IntVar(&c.leakKiB, "leak-kib", 1024, "heap-leak: KiB retained per tick")
	fs.IntVar(&c.garbageKiB, "garbage-kib", 4096, "heap-leak: KiB of garbage per tick")
	fs.DurationVar(&c.leakAfter, "leak-after", 0, "heap-leak: delay between READY and the first leak")
	fs.IntVar(&c.leakKiBPerSecond, "leak-kib-per-second", 0, "heap-leak: KiB retained per second of wall clock (each tick retains what is due; overrides --leak-kib)")
	fs.IntVar(&c.leakMaxMiB, "leak-max-mib", 0, "heap-leak: stop retaining once N MiB are kept (0 = never)")
	fs.IntVar(&c.spikeMiB, "spike-mib", 0, "heap-leak: MiB of a transient working set held half of every --spike-every")
	fs.DurationVar(&c.spikeEvery, "spike-every", 20*time.Second, "heap-leak: period of the --spike-mib working set")
	fs.IntVar(&c.goroutines, "goroutines", 100, "goroutine-leak: goroutines to leak")
	fs.IntVar(&c.goroutineRate, "goroutine-rate", 0, "goroutine-leak: goroutines per tick (0 = all at once)")
	fs.IntVar(&c.leakDepth, "leak-depth", 0, "goroutine-leak: extra stack frames under each leaked goroutine")
	fs.IntVar(&c.mapEntries, "map-entries", 1000000, "map-bloat: entries inserted")
	fs.IntVar(&c.mapKeep, "map-keep", 1000, "map-bloat: entries kept after the deletes")
	fs.IntVar(&c.reachMaps, "reach-maps", 3, "map-bloat: maps in the slice main.reachSlice")
	fs.DurationVar(&c.shrinkAfter, "shrink-after", 0, "map-bloat: delay between MAP_FULL and the deletes")
	fs.IntVar(&c.fds, "fds", 100, "fd-leak: files to open and never close")
	fs.IntVar(&c.fdRate, "fd-rate", 0, "fd-leak: files per tick (0 = all at once)")
	fs.IntVar(&c.mappings, "mappings", 100, "mmap: anonymous mappings (new VMAs)")
	fs.IntVar(&c.mappingKiB, "mapping-kib", 64, "mmap: size of each mapping in KiB")
	fs.IntVar(&c.hostileMiB, "hostile-mib", 500, "hostile: MiB that /debug/vars streams")
	fs.IntVar(&c.memoryLimitMiB, "memory-limit-mib", 0, "debug.SetMemoryLimit(N MiB) at start (0 = none)")
	fs.BoolVar(&c.metrics, "metrics", false, "also serve /metrics with the GC settings in force")
	fs.IntVar(&c.fillAddressSpaceMiB, "fill-address-space-mib", 0, "reserve the free address space below the stack, leaving no free range of N MiB (0 = off)")
	// level-off and file-thrash flags (modes_pressure.go)
	addPressureFlags(fs)
	_ = fs.Parse(os.Args[1:]) // ExitOnError: never returns an error

	bad := func(format string, args ...interface{}) {
		fmt.Fprintf(os.Stderr, "workload: "+format+"\n", args...)
		fs.Usage()
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		bad("unexpected arguments %q", fs.Args())
	}
	if _, ok := modes[c.mode]; !ok {
		bad("unknown or missing --mode %q", c.mode)
	}
	if c.tick <= 0 || c.spikeEvery <= 0 || c.duration < 0 || c.setupAfter < 0 || c.leakAfter < 0 || c.shrinkAfter < 0 {
		bad("--tick must be > 0 and the other durations >= 0")
	}
	for name, v := range map[string]int{
		"live-mib": c.liveMiB, "alloc-mib-per-tick": c.allocMiBPerTick,
		"leak-kib": c.leakKiB, "garbage-kib": c.garbageKiB, "spike-mib": c.spikeMiB, "leak-max-mib": c.leakMaxMiB,
		"goroutines": c.goroutines, "goroutine-rate": c.goroutineRate, "leak-depth": c.leakDepth,
		"map-entries": c.mapEntries, "map-keep": c.mapKeep, "reach-maps": c.reachMaps,
		"fds": c.fds, "fd-rate": c.fdRate, "mappings": c.mappings,
		"memory-limit-mib": c.memoryLimitMiB, "fill-address-space-mib": c.fillAddressSpaceMiB,
	} {
		if v < 0 {
			bad("--%s must be >= 0", name)
		}
	}
	if c.mappingKiB <= 0 {
		bad("--mapping-kib must be > 0")
	}
	return c
}

// stats is the expvar map "workload"; every key exists in every mode.
var stats = struct {
	mode                                            *expvar.String
	ticks, retainedBytes, liveBytes, allocatedBytes *expvar.Int
	allocs, goroutinesLeaked, mapEntries, fdsOpen   *expvar.Int
	mappings, mappingBytes, vmasBefore, vmasAfter   *expvar.Int
}{}

func init() {
	m := expvar.NewMap("workload")
	newInt := func(name string) *expvar.Int {
		v := new(expvar.Int)
		m.Set(name, v)
		return v
	}
	stats.mode = new(expvar.String)
	m.Set("mode", stats.mode)
	stats.ticks = newInt("ticks")
	stats.retainedBytes = newInt("retained_bytes")
	stats.liveBytes = newInt("live_bytes")
	stats.allocatedBytes = newInt("allocated_bytes")
	stats.allocs = newInt("allocs")
	stats.goroutinesLeaked = newInt("goroutines_leaked")
	stats.mapEntries = newInt("map_entries")
	stats.fdsOpen = newInt("fds_open")
	stats.mappings = newInt("mappings")
	stats.mappingBytes = newInt("mapping_bytes")
	stats.vmasBefore = newInt("vmas_before")
	stats.vmasAfter = newInt("vmas_after")
}

// out serialises stdout lines and stops them for good once DONE is printed.
var out struct {
	sync.Mutex
	done bool
}

// say prints one protocol line to stdout in a single write (os.Stdout is not
// buffered, so the reader sees it at once). It prints nothing after DONE.
func say(format string, args ...interface{}) {
	out.Lock()
	defer out.Unlock()
	if !out.done {
		fmt.Fprintf(os.Stdout, format+"\n", args...)
	}
}

// finish prints the last line and exits with code; no line can follow it.
func finish(code int, line string) {
	out.Lock()
	if !out.done {
		fmt.Fprintln(os.Stdout, line)
		out.done = true
	}
	os.Exit(code) // with the lock held, so nothing else is printed
}

// fatal reports a failed setup on stdout and stderr and exits 1.
func fatal(format string, args ...interface{}) {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintln(os.Stderr, "workload: "+msg)
	finish(1, "ERROR "+msg)
}

// sleepFor waits d (nothing when d is 0).
func sleepFor(d time.Duration) {
	if d > 0 {
		time.Sleep(d)
	}
}

func main() {
	c := parseFlags()
	start := time.Now()

	// Signals are watched through a channel the signal package keeps reachable,
	// so the main goroutine is never mistaken for a leaked one.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	var deadline <-chan time.Time
	if c.duration > 0 {
		timer := time.NewTimer(c.duration)
		defer timer.Stop()
		deadline = timer.C
	}

	ln, err := net.Listen("tcp", c.addr)
	listenedAt := time.Now().UnixNano()
	if err != nil {
		fmt.Fprintf(os.Stderr, "workload: listen %s: %v\n", c.addr, err)
		os.Exit(1)
	}
	applyMemorySettings(c)
	server := &http.Server{Handler: handlerFor(c), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := server.Serve(ln); err != nil {
			fmt.Fprintf(os.Stderr, "workload: http server: %v\n", err)
		}
	}()

	stats.mode.Set(c.mode)
	say("LISTEN %s at_unix_ns=%d", ln.Addr().String(), listenedAt)
	say("PID %d", os.Getpid())
	say("MODE %s go=%s", c.mode, runtime.Version())
	say("READY")
	if c.fillAddressSpaceMiB > 0 {
		reserved, largest, err := fillAddressSpace(uint64(c.fillAddressSpaceMiB) << 20)
		if err != nil {
			fatal("fill-address-space: %v", err)
		}
		say("ADDRESS_SPACE_FILLED reserved_bytes=%d largest_gap_bytes=%d", reserved, largest)
	}

	go modes[c.mode](c, rand.New(rand.NewSource(c.seed)))

	select {
	case <-deadline:
		finish(0, "DONE")
	case s := <-signals:
		fmt.Fprintf(os.Stderr, "workload: %v after %v\n", s, time.Since(start).Round(time.Millisecond))
		finish(0, "DONE signal="+signalName(s))
	}
}

// signalName is the short name of the signals main listens for.
func signalName(s os.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}

// addressGaps returns the free ranges [start, end) between consecutive mappings of
// /proc/self/maps up to and including [stack] ([vsyscall] left out), lowest first.
func addressGaps() ([][2]uintptr, error) {
	text, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return nil, err
	}
	var gaps [][2]uintptr
	var prevEnd uint64
	for i, line := range strings.Split(string(text), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) > 5 && fields[5] == "[vsyscall]" {
			continue
		}
		bounds := strings.SplitN(fields[0], "-", 2)
		if len(bounds) != 2 {
			return nil, fmt.Errorf("/proc/self/maps line %d: %q", i+1, line)
		}
		start, err1 := strconv.ParseUint(bounds[0], 16, 64)
		end, err2 := strconv.ParseUint(bounds[1], 16, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("/proc/self/maps line %d: %q", i+1, line)
		}
		if prevEnd != 0 && start > prevEnd {
			gaps = append(gaps, [2]uintptr{uintptr(prevEnd), uintptr(start)})
		}
		prevEnd = end
		if len(fields) > 5 && fields[5] == "[stack]" {
			break
		}
	}
	return gaps, nil
}

// fillAddressSpace maps PROT_NONE, MAP_NORESERVE ranges (address space, no memory)
// into every free range of maxGap bytes or more below [stack], leaving maxGap/4 free
// at both ends (the kernel keeps a guard gap below the stack, and the runtime small
// ranges to grow into). It returns the bytes reserved and the largest free range
// left. A range another thread mapped meanwhile is skipped and the maps read again.
func fillAddressSpace(maxGap uint64) (reserved, largest uint64, err error) {
	if maxGap<<1 < maxGap {
		return 0, 0, fmt.Errorf("%d bytes is too large", maxGap)
	}
	page := uint64(os.Getpagesize())
	keep := uintptr((maxGap / 4) / page * page)
	for attempt := 0; attempt < 5; attempt++ {
		gaps, err := addressGaps()
		if err != nil {
			return reserved, 0, err
		}
		raced := false
		for _, g := range gaps {
			if size := uint64(g[1] - g[0]); size < maxGap || size <= uint64(2*keep) {
				continue
			}
			addr, n := g[0]+keep, g[1]-g[0]-2*keep
			// fd -1 for an anonymous mapping; the address is a hint: the kernel
			// takes it when the range is free.
			p, _, errno := syscall.Syscall6(syscall.SYS_MMAP, addr, n, syscall.PROT_NONE,
				syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE, ^uintptr(0), 0)
			if errno != 0 {
				return reserved, 0, fmt.Errorf("mmap %d bytes at %#x: %v", n, addr, errno)
			}
			if p != addr {
				syscall.Syscall(syscall.SYS_MUNMAP, p, n, 0)
				raced = true
				continue
			}
			reserved += uint64(n)
		}
		if !raced {
			// The workload's own count, from the maps as they are now.
			gaps, err := addressGaps()
			if err != nil {
				return reserved, 0, err
			}
			largest = 0
			for _, g := range gaps {
				if size := uint64(g[1] - g[0]); size > largest {
					largest = size
				}
			}
			return reserved, largest, nil
		}
	}
	return reserved, 0, fmt.Errorf("the address space kept changing under the fill")
}
