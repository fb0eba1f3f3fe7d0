package main

// mapHeaderCapacity reads a map's own runtime header through unsafe, with the
// layout of the Go version that built this program, so the map-bloat mode can
// print the length and capacity an outside reader (memlens maps) must find.
// It is written from the runtime sources, independently of the DWARF that
// memlens reads: the two agreeing is the check.
//
// Classic maps (Go <= 1.23, or GOEXPERIMENT=noswissmap on 1.24-1.25), runtime.hmap:
//
//	count int; flags uint8; B uint8; ...   capacity = 8 << B slots
//
// Swiss maps (Go >= 1.24), internal/runtime/maps.Map:
//
//	used uint64; seed uintptr; dirPtr unsafe.Pointer; dirLen int; ...
//	dirLen == 0: one small group of 8 slots (none while dirPtr is nil)
//	else dirPtr -> [dirLen]*table, table{used, capacity uint16, ...};
//	several directory entries may share a table: each table counts once.

import (
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"unsafe"
)

// mapHeader is what mapHeaderCapacity read: the length, the slots and the layout.
type mapHeader struct {
	length   uint64
	capacity uint64
	layout   string // "classic" or "swiss"
}

// swissMaps says whether this binary's maps are Swiss tables.
func swissMaps() bool {
	v := strings.TrimPrefix(runtime.Version(), "go")
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	minor, err := strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err != nil || minor < 24 {
		return false
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "GOEXPERIMENT" && strings.Contains(s.Value, "noswissmap") {
				return false
			}
		}
	}
	return true
}

// readMapHeader reads the header of the map stored at *m (a map variable's
// address: a map value is a pointer to its header).
func readMapHeader(m unsafe.Pointer) mapHeader {
	hdr := *(*unsafe.Pointer)(m)
	if hdr == nil {
		return mapHeader{layout: "nil"}
	}
	if !swissMaps() {
		count := *(*int)(hdr)
		b := *(*uint8)(unsafe.Add(hdr, 9))
		return mapHeader{length: uint64(count), capacity: 8 << b, layout: "classic"}
	}
	used := *(*uint64)(hdr)
	dirPtr := *(*unsafe.Pointer)(unsafe.Add(hdr, 16))
	dirLen := *(*int)(unsafe.Add(hdr, 24))
	h := mapHeader{length: used, layout: "swiss"}
	if dirLen == 0 {
		if dirPtr != nil {
			h.capacity = 8
		}
		return h
	}
	seen := map[unsafe.Pointer]bool{}
	for i := 0; i < dirLen; i++ {
		t := *(*unsafe.Pointer)(unsafe.Add(dirPtr, i*int(unsafe.Sizeof(uintptr(0)))))
		if t == nil || seen[t] {
			continue
		}
		seen[t] = true
		h.capacity += uint64(*(*uint16)(unsafe.Add(t, 2)))
	}
	return h
}
