// Command gen makes the big inputs of scripts/bench_goroutines_heap.py from a
// real Go runtime: goroutine dumps with many distinct stacks and heap profiles
// with hundreds of thousands of distinct stacks. Standard library only; go.mod
// says go 1.19, so it builds with Debian's Go 1.19 and with Go 1.27.
//
// # Usage
//
//	gen goroutines [--n N] [--branches B] [--depth D] [--duration T]
//	gen heap --out FILE [--depth D] [--object-bytes N]
//
// # goroutines
//
// Starts N goroutines (default 100000). Goroutine i runs a chain of D+1 calls
// (default D=2) among B functions (default B=10, at most 16), main.f0 ...
// main.f15, chosen by the base-B digits of i, and then blocks forever on a
// channel receive in the last one: B^(D+1) distinct stacks (1000 by default),
// all created by main.spawn. Then it serves net/http/pprof on 127.0.0.1 and
// prints, one line each on stdout:
//
//	LISTEN 127.0.0.1:PORT
//	PID <pid>
//	READY goroutines=<N> stacks=<B^(D+1)>
//
// The caller fetches /debug/pprof/goroutine?debug=2, or sends SIGQUIT with
// GOTRACEBACK=all to have the runtime dump every goroutine on stderr and exit 2.
// The process exits 0 after --duration (default 15m) in any case.
//
// # heap
//
// Sets runtime.MemProfileRate = 1 first thing in main (every allocation is
// sampled), then allocates 2^D objects (default D=18: 262144) of --object-bytes
// bytes (default 64), each through its own call path: main.grow recurses D
// levels and calls itself from one of two call sites per level, chosen by one
// bit of the path number. All objects stay live. After runtime.GC() the heap
// profile is written with pprof.WriteHeapProfile to --out, and the line
//
//	HEAP_WRITTEN objects=<2^D> path=<FILE>
//
// is printed; the process exits 0.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "heap" {
		// First thing: every allocation of the heap mode is sampled.
		runtime.MemProfileRate = 1
	}
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "goroutines":
		runGoroutines(os.Args[2:])
	case "heap":
		runHeap(os.Args[2:])
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: gen goroutines [--n N] [--branches B] [--depth D] [--duration T]")
	fmt.Fprintln(os.Stderr, "       gen heap --out FILE [--depth D] [--object-bytes N]")
	os.Exit(2)
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "gen: "+format+"\n", args...)
	os.Exit(2)
}

// ---- goroutines ----

// block is never sent to nor closed: a receive from it blocks forever.
var block = make(chan struct{})

// started counts goroutines that reached their last function.
var started sync.WaitGroup

// branches is B, the number of functions each level chooses among.
var branches int

// table holds f0..f15; filled in init (a direct reference would be an
// initialization cycle, since each function calls through the table).
var table [16]func(d, idx int)

func init() {
	table = [16]func(d, idx int){f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15}
}

// step is the body of every fN: the last level blocks, the others call the
// function chosen by the next base-B digit of idx.
func step(d, idx int) {
	if d == 0 {
		started.Done()
		<-block
		return
	}
	table[idx%branches](d-1, idx/branches)
}

// The sixteen functions: one frame each (noinline), so each choice of the chain
// is a distinct stack of function names.

//go:noinline
func f0(d, idx int) { step(d, idx) }

//go:noinline
func f1(d, idx int) { step(d, idx) }

//go:noinline
func f2(d, idx int) { step(d, idx) }

//go:noinline
func f3(d, idx int) { step(d, idx) }

//go:noinline
func f4(d, idx int) { step(d, idx) }

//go:noinline
func f5(d, idx int) { step(d, idx) }

//go:noinline
func f6(d, idx int) { step(d, idx) }

//go:noinline
func f7(d, idx int) { step(d, idx) }

//go:noinline
func f8(d, idx int) { step(d, idx) }

//go:noinline
func f9(d, idx int) { step(d, idx) }

//go:noinline
func f10(d, idx int) { step(d, idx) }

//go:noinline
func f11(d, idx int) { step(d, idx) }

//go:noinline
func f12(d, idx int) { step(d, idx) }

//go:noinline
func f13(d, idx int) { step(d, idx) }

//go:noinline
func f14(d, idx int) { step(d, idx) }

//go:noinline
func f15(d, idx int) { step(d, idx) }

// spawn starts n goroutines, goroutine i on the chain given by the digits of i.
//
//go:noinline
func spawn(n, depth int) {
	for i := 0; i < n; i++ {
		go table[i%branches](depth, i/branches)
	}
}

func runGoroutines(args []string) {
	fs := flag.NewFlagSet("gen goroutines", flag.ExitOnError)
	n := fs.Int("n", 100000, "goroutines to start")
	b := fs.Int("branches", 10, "functions to choose among per level (2..16)")
	depth := fs.Int("depth", 2, "calls after the first one (stacks = branches^(depth+1))")
	duration := fs.Duration("duration", 15*time.Minute, "hard bound on the run")
	_ = fs.Parse(args) // ExitOnError
	if *n < 1 || *b < 2 || *b > 16 || *depth < 0 || *depth > 50 || fs.NArg() > 0 {
		fail("bad flags: need --n >= 1, 2 <= --branches <= 16, 0 <= --depth <= 50")
	}
	branches = *b
	stacks := 1
	for i := 0; i <= *depth; i++ {
		stacks *= branches
		if stacks > *n {
			break
		}
	}
	if stacks > *n {
		stacks = *n
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("listen: %v", err)
	}
	go func() { _ = http.Serve(ln, nil) }()
	time.AfterFunc(*duration, func() { os.Exit(0) })
	fmt.Printf("LISTEN %s\nPID %d\n", ln.Addr(), os.Getpid())

	started.Add(*n)
	spawn(*n, *depth)
	started.Wait()
	fmt.Printf("READY goroutines=%d stacks=%d\n", *n, stacks)
	select {}
}

// ---- heap ----

// kept holds every object of the heap mode, so all stay live (in use).
var kept [][]byte

// objectBytes is the size of each kept object.
var objectBytes int

// grow recurses d levels; at each level the low bit of path picks one of two
// call sites, so each path number is a distinct call stack of the allocation.
//
//go:noinline
func grow(d int, path uint32) {
	if d == 0 {
		kept = append(kept, make([]byte, objectBytes))
		return
	}
	if path&1 == 0 {
		grow(d-1, path>>1)
	} else {
		grow(d-1, path>>1)
	}
}

func runHeap(args []string) {
	fs := flag.NewFlagSet("gen heap", flag.ExitOnError)
	out := fs.String("out", "", "file to write the heap profile to")
	depth := fs.Int("depth", 18, "levels of binary choice (objects = 2^depth)")
	fs.IntVar(&objectBytes, "object-bytes", 64, "bytes per kept object")
	_ = fs.Parse(args) // ExitOnError
	if *out == "" || *depth < 1 || *depth > 24 || objectBytes < 1 || fs.NArg() > 0 {
		fail("bad flags: need --out FILE, 1 <= --depth <= 24, --object-bytes >= 1")
	}
	objects := uint32(1) << uint(*depth)
	kept = make([][]byte, 0, objects)
	for p := uint32(0); p < objects; p++ {
		grow(*depth, p)
	}
	runtime.GC() // the heap profile reports the state as of the last GC
	f, err := os.Create(*out)
	if err != nil {
		fail("%v", err)
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		fail("write profile: %v", err)
	}
	if err := f.Close(); err != nil {
		fail("%v", err)
	}
	runtime.KeepAlive(kept)
	fmt.Printf("HEAP_WRITTEN objects=%d path=%s\n", objects, *out)
}
