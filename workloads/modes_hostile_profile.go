package main

// The hostile-profile mode: /debug/pprof/heap serves a hand-built heap
// profile (gzipped protobuf, profile.proto) whose function and file names
// carry <script> and onerror payloads, to test that a page drawing it runs
// none of them. The payloads set document.title ("pwned-...") if they ran.
// Everything else is the standard pprof/expvar mux.

import (
	"bytes"
	"compress/gzip"
	"math/rand"
	"net/http"
)

// hostileNames are the (function, file) pairs of the profile, root first.
var hostileNames = [][2]string{
	{"main.main", "main.go"},
	{"main.<script>document.title='pwned-script'</script>", "\"><img src=x onerror=\"document.title='pwned-img'\">.go"},
	{"main.\"><img src=x onerror=\"document.title='pwned-fn'\">", "<svg onload=\"document.title='pwned-svg'\">.go"},
}

// pbVarint appends a protobuf varint.
func pbVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// pbInt appends field f as a varint.
func pbInt(b []byte, f int, v uint64) []byte {
	return pbVarint(pbVarint(b, uint64(f)<<3), v)
}

// pbBytes appends field f as length-delimited bytes.
func pbBytes(b []byte, f int, v []byte) []byte {
	b = pbVarint(pbVarint(b, uint64(f)<<3|2), uint64(len(v)))
	return append(b, v...)
}

// hostileHeapProfile builds the profile: two samples, the deeper (hostile)
// stack ten times the wider, so its frames are wide enough to be labelled.
func hostileHeapProfile() []byte {
	strs := []string{""}
	str := func(s string) uint64 {
		strs = append(strs, s)
		return uint64(len(strs) - 1)
	}
	var p []byte
	for _, t := range [][2]string{{"alloc_objects", "count"}, {"alloc_space", "bytes"}, {"inuse_objects", "count"}, {"inuse_space", "bytes"}} {
		var vt []byte
		vt = pbInt(vt, 1, str(t[0]))
		vt = pbInt(vt, 2, str(t[1]))
		p = pbBytes(p, 1, vt)
	}
	for i, n := range hostileNames {
		id := uint64(i + 1)
		var fn []byte
		fn = pbInt(fn, 1, id)
		fn = pbInt(fn, 2, str(n[0]))
		fn = pbInt(fn, 3, str(n[0]))
		fn = pbInt(fn, 4, str(n[1]))
		p = pbBytes(p, 5, fn)
		var line []byte
		line = pbInt(line, 1, id)
		line = pbInt(line, 2, uint64(10*(i+1)))
		var loc []byte
		loc = pbInt(loc, 1, id)
		loc = pbInt(loc, 3, 0x1000+id) // address (2 would be a mapping id)
		loc = pbBytes(loc, 4, line)
		p = pbBytes(p, 4, loc)
	}
	// Locations leaf first: main.main <- hostile 1 <- hostile 2.
	for _, s := range []struct {
		locs  []uint64
		bytes uint64
	}{{[]uint64{3, 2, 1}, 10 << 20}, {[]uint64{2, 1}, 1 << 20}} {
		var locs, vals, sample []byte
		for _, l := range s.locs {
			locs = pbVarint(locs, l)
		}
		for _, v := range []uint64{s.bytes >> 10, s.bytes, s.bytes >> 10, s.bytes} {
			vals = pbVarint(vals, v)
		}
		sample = pbBytes(sample, 1, locs)
		sample = pbBytes(sample, 2, vals)
		p = pbBytes(p, 2, sample)
	}
	var period []byte
	period = pbInt(period, 1, str("space"))
	period = pbInt(period, 2, str("bytes"))
	p = pbBytes(p, 11, period)
	p = pbInt(p, 12, 512*1024)
	for _, s := range strs {
		p = pbBytes(p, 6, []byte(s))
	}
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(p) //nolint:errcheck // a bytes.Buffer does not fail
	zw.Close()  //nolint:errcheck
	return out.Bytes()
}

// hostileProfileHandler serves the hand-built heap profile.
func hostileProfileHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", http.DefaultServeMux)
	profile := hostileHeapProfile()
	mux.HandleFunc("/debug/pprof/heap", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(profile) //nolint:errcheck // the client went away
	})
	return mux
}

// runHostileProfile has nothing to set up: the profile is the point.
func runHostileProfile(c *config, _ *rand.Rand) {
	say("SETUP_DONE")
}
