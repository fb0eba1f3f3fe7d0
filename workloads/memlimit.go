package main

// Memory-limit settings made in code, and a Prometheus /metrics endpoint that
// shows the GC settings in force the way client_golang does.
//
//	--memory-limit-mib N   calls debug.SetMemoryLimit(N MiB) at start (Go 1.19+):
//	                       a limit set in code, which the environment never shows.
//	--metrics              serves /metrics (Prometheus text) with go_gc_gomemlimit_bytes,
//	                       go_gc_gogc_percent (read from the runtime, so they include
//	                       what the code set) and the go_memstats_* gauges of the heap.

import (
	"fmt"
	"math"
	"net/http"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// applyMemorySettings sets the code's memory limit and registers /metrics on
// the default mux (before the server starts serving it).
func applyMemorySettings(c *config) {
	if c.memoryLimitMiB > 0 {
		debug.SetMemoryLimit(int64(c.memoryLimitMiB) * mib)
	}
	if c.metrics {
		http.HandleFunc("/metrics", serveMetrics)
	}
}

// runtimeMetric reads one runtime/metrics value; ok is false when this Go
// version does not have it (/gc/gomemlimit:bytes and /gc/gogc:percent came
// with Go 1.21).
func runtimeMetric(name string) (uint64, bool) {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0, false
	}
	return s[0].Value.Uint64(), true
}

// serveMetrics writes the GC settings in force and the heap gauges.
func serveMetrics(w http.ResponseWriter, _ *http.Request) {
	limit, ok := runtimeMetric("/gc/gomemlimit:bytes")
	if !ok {
		// Go 1.19/1.20: a negative input reads the limit without changing it.
		limit = uint64(debug.SetMemoryLimit(-1))
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	gauge := func(name, help string, value float64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %g\n", name, help, name, name, value)
	}
	gauge("go_gc_gomemlimit_bytes", "Go runtime memory limit (math.MaxInt64 = none).", float64(limit))
	if gogc, ok := runtimeMetric("/gc/gogc:percent"); ok {
		value := float64(gogc)
		if gogc > math.MaxInt32 {
			value = -1 // GOGC=off: the runtime's -1 read as a uint64
		}
		gauge("go_gc_gogc_percent", "Heap size target percentage (GOGC).", value)
	}
	gauge("go_goroutines", "Number of goroutines.", float64(runtime.NumGoroutine()))
	gauge("go_memstats_heap_alloc_bytes", "HeapAlloc.", float64(m.HeapAlloc))
	gauge("go_memstats_heap_inuse_bytes", "HeapInuse.", float64(m.HeapInuse))
	gauge("go_memstats_heap_idle_bytes", "HeapIdle.", float64(m.HeapIdle))
	gauge("go_memstats_heap_released_bytes", "HeapReleased.", float64(m.HeapReleased))
	gauge("go_memstats_heap_sys_bytes", "HeapSys.", float64(m.HeapSys))
	gauge("go_memstats_sys_bytes", "Sys.", float64(m.Sys))
	gauge("go_memstats_next_gc_bytes", "NextGC.", float64(m.NextGC))
}
