package main

// The mmap mode: K anonymous mappings outside the Go heap, each its own VMA.

import (
	"bytes"
	"math/rand"
	"os"
	"runtime"
	"runtime/debug"
	"syscall"
	"unsafe"
)

// mmapRegion is the whole region the mmap mode mapped (holes included); mapped
// holds the K pieces that stay mapped. Both stay reachable for the whole run.
var (
	mmapRegion []byte
	mapped     [][]byte
)

// runMmap maps --mappings read-write anonymous private pieces of --mapping-kib KiB
// (rounded up to whole pages) and writes every page.
//
// Adjacent anonymous mappings with the same permissions merge into one VMA, so it
// maps a single region laid out as
//
//	hole | piece 0 | hole | piece 1 | ... | piece K-1 | hole
//
// (each hole one page) and unmaps the holes: the region's one VMA becomes K that
// touch neither each other nor anything mapped before. One-page holes are too
// small for the runtime's own later mappings to land in and merge with them.
//
// It counts the lines of /proc/self/maps just before and just after, with the GC
// off and the goroutine on one thread so the runtime maps nothing meanwhile, and
// prints MAPPINGS K vmas_before=X vmas_after=Y.
func runMmap(c *config, _ *rand.Rand) {
	sleepFor(c.setupAfter)
	page := os.Getpagesize()
	size := (c.mappingKiB*kib + page - 1) / page * page
	k := c.mappings
	total := k*(size+page) + page

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	buf := make([]byte, 64*kib) // allocated before the first count
	countVMAs(buf)              // warm up: the first open may allocate

	before := countVMAs(buf)
	region, err := syscall.Mmap(-1, 0, total, syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		fatal("mmap: %d bytes: %v", total, err)
	}
	mmapRegion = region
	mapped = make([][]byte, 0, k)
	for i := 0; i <= k; i++ {
		hole := i * (size + page)
		if err := munmap(region[hole : hole+page]); err != nil {
			fatal("mmap: munmap hole %d: %v", i, err)
		}
		if i < k {
			piece := region[hole+page : hole+page+size : hole+page+size]
			touchPages(piece, byte(i+1))
			mapped = append(mapped, piece)
		}
	}
	after := countVMAs(buf)

	stats.mappings.Set(int64(k))
	stats.mappingBytes.Set(int64(k) * int64(size))
	stats.vmasBefore.Set(int64(before))
	stats.vmasAfter.Set(int64(after))
	say("MAPPINGS %d vmas_before=%d vmas_after=%d", k, before, after)
	say("SETUP_DONE")
}

// munmap unmaps the pages under b. Unlike syscall.Munmap it accepts part of a
// mapping (syscall.Munmap only takes whole slices that syscall.Mmap returned).
func munmap(b []byte) error {
	_, _, errno := syscall.Syscall(syscall.SYS_MUNMAP,
		uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// countVMAs returns the number of lines of /proc/self/maps (one per VMA), reading
// through buf so that counting allocates (almost) nothing. -1 if it cannot read.
func countVMAs(buf []byte) int {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return -1
	}
	defer f.Close()
	lines := 0
	for {
		n, err := f.Read(buf)
		lines += bytes.Count(buf[:n], []byte{'\n'})
		if err != nil || n == 0 {
			return lines
		}
	}
}
