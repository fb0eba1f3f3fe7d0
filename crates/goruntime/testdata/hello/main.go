// Command hello is the tiny program the build-info tests compile with both Go
// toolchains. It uses only the standard library plus the local module in greet/,
// pulled in through a directory `replace`, so the embedded build info has a `dep`
// line and a `=>` line without downloading anything.
package main

import (
	"fmt"

	"memlens.dev/greet"
)

func main() { fmt.Println(greet.Hello("memlens")) }
