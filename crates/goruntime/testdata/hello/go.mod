module memlens.dev/hello

go 1.19

require memlens.dev/greet v0.0.0

replace memlens.dev/greet => ./greet
