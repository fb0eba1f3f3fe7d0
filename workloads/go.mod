module memlens.dev/workload

go 1.19
