module memlens.dev/workload-gen

go 1.19
