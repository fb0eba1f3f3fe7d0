package main

// The modes that hold a cgroup at its memory limit: level-off (a heap that
// climbs and stops just under the limit) and file-thrash (an anonymous heap
// near the limit next to a file-backed working set larger than what the limit
// leaves, so the kernel reclaims the file's pages and the workload faults them
// back in). Both are paced by the wall clock, not by ticks, so a loaded machine
// that runs a tick late does not change their shape.
//
//	level-off:   --plateau-mib N (100) --climb-for D (60s) --garbage-kib N (4096)
//	file-thrash: --heap-mib N (160) --file-dir DIR (required) --file-mib N (128)
//	             --thrash-for D (60s) --thrash-mib-per-second N (64)

import (
	"flag"
	"math/rand"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// pressureConfig holds the flags of the modes of this file.
type pressureConfig struct {
	plateauMiB         int
	climbFor           time.Duration
	heapMiB            int
	fileDir            string
	fileMiB            int
	thrashFor          time.Duration
	thrashMiBPerSecond int
}

var pressure pressureConfig

// addPressureFlags registers the flags of level-off and file-thrash.
func addPressureFlags(fs *flag.FlagSet) {
	fs.IntVar(&pressure.plateauMiB, "plateau-mib", 100, "level-off: MiB retained once the climb is over")
	fs.DurationVar(&pressure.climbFor, "climb-for", 60*time.Second, "level-off: wall time of the climb to --plateau-mib")
	fs.IntVar(&pressure.heapMiB, "heap-mib", 160, "file-thrash: anonymous heap held, in MiB")
	fs.StringVar(&pressure.fileDir, "file-dir", "", "file-thrash: directory of the file read again and again (required)")
	fs.IntVar(&pressure.fileMiB, "file-mib", 128, "file-thrash: size of the file, in MiB")
	fs.DurationVar(&pressure.thrashFor, "thrash-for", 60*time.Second, "file-thrash: wall time of reading the file; then calm")
	fs.IntVar(&pressure.thrashMiBPerSecond, "thrash-mib-per-second", 64, "file-thrash: MiB of the file touched per second")
}

// plateau holds what level-off retains.
var plateau [][]byte

// retainPlateauChunk allocates one chunk, writes every page and keeps it: the
// allocation site of level-off's climb.
//
//go:noinline
func retainPlateauChunk(v byte) {
	plateau = append(plateau, newChunk(chunkBytes, v))
}

// runLevelOff retains --plateau-mib MiB over --climb-for (as much as the wall
// clock says is due at each tick, so a late tick catches up), then holds it;
// every tick it also makes --garbage-kib KiB of garbage, so the GC keeps
// cycling on top of the plateau. Prints CLIMB_START, PLATEAU retained_bytes=N
// when the climb is over, and TICK n retained_bytes=N every tick.
func runLevelOff(c *config, _ *rand.Rand) {
	if pressure.plateauMiB <= 0 || pressure.climbFor <= 0 {
		fatal("level-off: --plateau-mib and --climb-for must be > 0")
	}
	total := pressure.plateauMiB * mib / chunkBytes
	start := time.Now()
	say("CLIMB_START")
	ticker := time.NewTicker(c.tick)
	defer ticker.Stop()
	leveled := false
	for n := int64(1); ; n++ {
		<-ticker.C
		due := total
		if elapsed := time.Since(start); elapsed < pressure.climbFor {
			due = int(int64(total) * int64(elapsed) / int64(pressure.climbFor))
		}
		for len(plateau) < due {
			retainPlateauChunk(byte(n))
		}
		retained := int64(len(plateau)) * chunkBytes
		if !leveled && len(plateau) == total {
			leveled = true
			say("PLATEAU retained_bytes=%d", retained)
		}
		allocGarbage(c.garbageKiB*kib, byte(n))
		stats.ticks.Set(n)
		stats.retainedBytes.Set(retained)
		say("TICK %d retained_bytes=%d", n, retained)
	}
}

// thrashHeap is file-thrash's anonymous heap; thrashFile its mapped file.
var (
	thrashHeap [][]byte
	thrashFile []byte
)

// runFileThrash holds --heap-mib MiB of written heap, writes a --file-mib MiB
// file in --file-dir (so its page cache is charged to this process's cgroup),
// maps it and, for --thrash-for, touches one byte of each of its pages in a
// loop, in a scattered order with no readahead (MADV_RANDOM), at
// --thrash-mib-per-second (wall clock: each tick touches what is due by now). When the heap and the file do not both fit under the cgroup's
// limit, the kernel reclaims the file's pages and each touch faults them back
// in (major faults, workingset refaults). Then the mapping is dropped and the
// workload stays calm, holding its heap.
//
// Prints HEAP_HELD heap_bytes=N, FILE_WRITTEN path=P file_bytes=N,
// THRASH_START, THRASH_END touched_bytes=N passes=K, then CALM.
func runFileThrash(c *config, _ *rand.Rand) {
	if pressure.fileDir == "" || pressure.fileMiB <= 0 || pressure.thrashMiBPerSecond <= 0 {
		fatal("file-thrash: --file-dir is required; --file-mib and --thrash-mib-per-second must be > 0")
	}
	for i := 0; i < pressure.heapMiB*mib/chunkBytes; i++ {
		thrashHeap = append(thrashHeap, newChunk(chunkBytes, byte(i)))
	}
	stats.liveBytes.Set(int64(len(thrashHeap)) * chunkBytes)
	say("HEAP_HELD heap_bytes=%d", int64(len(thrashHeap))*chunkBytes)

	path := filepath.Join(pressure.fileDir, "file-thrash.data")
	size := pressure.fileMiB * mib
	if err := writeThrashFile(path, size); err != nil {
		fatal("file-thrash: write %s: %v", path, err)
	}
	say("FILE_WRITTEN path=%s file_bytes=%d", path, size)
	f, err := os.Open(path)
	if err != nil {
		fatal("file-thrash: open %s: %v", path, err)
	}
	thrashFile, err = syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	f.Close()
	if err != nil {
		fatal("file-thrash: mmap %s: %v", path, err)
	}

	// Scattered reads with no readahead, as bbolt (etcd's store) maps its
	// file: each touch of an evicted page is a major fault that waits for
	// the read of that one page. (This machine's 8 MiB read_ahead_kb would
	// otherwise read 8 MiB around every fault.)
	if err := syscall.Madvise(thrashFile, syscall.MADV_RANDOM); err != nil {
		fatal("file-thrash: madvise: %v", err)
	}
	pages := int64(size / pageBytes)
	stride := coprimeStride(pages)
	say("THRASH_START")
	start := time.Now()
	rate := int64(pressure.thrashMiBPerSecond) * mib / pageBytes
	var touched int64
	var sum byte
	ticker := time.NewTicker(c.tick)
	for time.Since(start) < pressure.thrashFor {
		<-ticker.C
		due := rate * int64(time.Since(start)) / int64(time.Second)
		for ; touched < due; touched++ {
			sum += thrashFile[(touched*stride%pages)*pageBytes]
		}
		stats.allocatedBytes.Set(touched * pageBytes)
	}
	ticker.Stop()
	passes := touched / pages
	if err := syscall.Munmap(thrashFile); err != nil {
		fatal("file-thrash: munmap: %v", err)
	}
	thrashFile = nil
	say("THRASH_END touched_bytes=%d passes=%d checksum=%d", touched*pageBytes, passes, sum)
	say("CALM")
}

// coprimeStride returns a stride near the golden ratio of n that shares no
// factor with n: i*stride mod n then visits every page once per pass, in an
// order that jumps all over the file.
func coprimeStride(n int64) int64 {
	gcd := func(a, b int64) int64 {
		for b != 0 {
			a, b = b, a%b
		}
		return a
	}
	s := n*618/1000 + 1
	for gcd(s, n) != 1 {
		s++
	}
	return s
}

// writeThrashFile writes size bytes of non-zero pages to path and syncs them,
// so the pages are clean page cache that reclaim can drop and re-read.
func writeThrashFile(path string, size int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	block := make([]byte, mib)
	for i := range block {
		block[i] = byte(i*7 + 1)
	}
	for written := 0; written < size; written += len(block) {
		n := len(block)
		if size-written < n {
			n = size - written
		}
		if _, err := f.Write(block[:n]); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
