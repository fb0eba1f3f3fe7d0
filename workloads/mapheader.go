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
	length     uint64
	capacity   uint64
	layout     string // "classic" or "swiss"
	oldBuckets uint64 // classic: buckets being evacuated (0 when not growing)
	evacuated  uint64 // classic: nevacuate, how many of them are done
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
		// count int @0; flags uint8 @8; B uint8 @9; noverflow uint16 @10;
		// hash0 uint32 @12; buckets @16; oldbuckets @24; nevacuate uintptr @32.
		count := *(*int)(hdr)
		flags := *(*uint8)(unsafe.Add(hdr, 8))
		b := *(*uint8)(unsafe.Add(hdr, 9))
		h := mapHeader{length: uint64(count), capacity: 8 << b, layout: "classic"}
		if *(*unsafe.Pointer)(unsafe.Add(hdr, 24)) != nil {
			h.oldBuckets = uint64(1) << b / 2
			if flags&8 != 0 { // sameSizeGrow
				h.oldBuckets = uint64(1) << b
			}
			h.evacuated = uint64(*(*uintptr)(unsafe.Add(hdr, 32)))
		}
		return h
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

// swissTombstones counts the deleted slots (control byte 0xFE) in every group
// of the Swiss map stored at *m, whose groups are groupBytes long:
// table{used, capacity, growthLeft uint16; localDepth uint8; index int;
// groups{data unsafe.Pointer @16; lengthMask uint64 @24}}; a group starts with
// its 8 control bytes.
func swissTombstones(m unsafe.Pointer, groupBytes uintptr) int {
	hdr := *(*unsafe.Pointer)(m)
	if hdr == nil {
		return 0
	}
	count := func(group unsafe.Pointer) int {
		n := 0
		for i := uintptr(0); i < 8; i++ {
			if *(*uint8)(unsafe.Add(group, i)) == 0xFE {
				n++
			}
		}
		return n
	}
	dirPtr := *(*unsafe.Pointer)(unsafe.Add(hdr, 16))
	dirLen := *(*int)(unsafe.Add(hdr, 24))
	if dirLen == 0 {
		if dirPtr == nil {
			return 0
		}
		return count(dirPtr)
	}
	n := 0
	seen := map[unsafe.Pointer]bool{}
	for i := 0; i < dirLen; i++ {
		t := *(*unsafe.Pointer)(unsafe.Add(dirPtr, i*int(unsafe.Sizeof(uintptr(0)))))
		if t == nil || seen[t] {
			continue
		}
		seen[t] = true
		data := *(*unsafe.Pointer)(unsafe.Add(t, 16))
		groups := *(*uint64)(unsafe.Add(t, 24)) + 1
		for g := uint64(0); g < groups; g++ {
			n += count(unsafe.Add(data, uintptr(g)*groupBytes))
		}
	}
	return n
}
