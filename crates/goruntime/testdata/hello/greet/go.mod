module memlens.dev/greet

go 1.19
