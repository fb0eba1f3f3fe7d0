// A program with maps at package level, built by crates/gomem/tests/index_go.rs
// with each toolchain to check the DWARF index against `go tool nm`.
package main

import "fmt"

// Counts is a package-level map variable.
var Counts = map[string]int{"a": 1}

// holder keeps a map two fields deep.
var holder struct {
	name  string
	inner struct{ byID map[[2]int64]map[string]bool }
}

func main() {
	holder.inner.byID = map[[2]int64]map[string]bool{{1, 2}: {"x": true}}
	fmt.Println(len(Counts), len(holder.inner.byID), holder.name)
}
