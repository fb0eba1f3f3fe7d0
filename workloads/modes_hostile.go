package main

// The hostile mode: a Go process whose debug endpoints misbehave, to test that
// a reader stays bounded in time and memory. Its pprof index answers normally
// (so it is found), but /debug/vars streams --hostile-mib MiB that never end
// as JSON, and the heap and goroutine profiles never answer.

import (
	"math/rand"
	"net/http"
	"strings"
	"time"
)

// handlerFor is the HTTP handler of the workload's server: the standard
// pprof/expvar mux, or the hostile one for --mode hostile.
func handlerFor(c *config) http.Handler {
	if c.mode == "hostile-profile" {
		return hostileProfileHandler()
	}
	if c.mode != "hostile" {
		return http.DefaultServeMux
	}
	mux := http.NewServeMux()
	mux.Handle("/debug/pprof/", http.DefaultServeMux)
	mux.HandleFunc("/debug/vars", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		// A valid start, then digits for ever (up to --hostile-mib MiB).
		if _, err := w.Write([]byte(`{"memstats": {"Alloc": 1`)); err != nil {
			return
		}
		block := []byte(strings.Repeat("1", 1<<20))
		for i := 0; i < c.hostileMiB; i++ {
			if _, err := w.Write(block); err != nil {
				return
			}
		}
	})
	hang := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(c.duration):
		}
	}
	mux.HandleFunc("/debug/pprof/heap", hang)
	mux.HandleFunc("/debug/pprof/goroutine", hang)
	mux.HandleFunc("/debug/pprof/goroutineleak", hang)
	return mux
}

// runHostile has nothing to set up: the server is the point.
func runHostile(c *config, _ *rand.Rand) {
	say("SETUP_DONE")
}
