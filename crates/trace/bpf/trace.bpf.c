// SPDX-License-Identifier: (MIT OR GPL-2.0)
// memlens trace: counts page faults and memory syscalls of chosen processes in
// the kernel, and takes the user stack of 1 event in N (config[event]).
//
// Built by crates/trace/build.rs with `clang -target bpf`; loaded by aya.
// Written against the tracepoint formats in /sys/kernel/tracing/events/*/*/format.
#include <linux/types.h>
#include <linux/bpf.h>

#undef __always_inline
#define __always_inline inline __attribute__((always_inline))
#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

static long (*bpf_get_stackid)(void *ctx, void *map, __u64 flags) = (void *)27;
static __u64 (*bpf_get_current_pid_tgid)(void) = (void *)14;
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)2;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)5;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;

/* Event numbers: keep in step with src/event.rs. */
#define EV_FAULT 0
#define EV_MMAP 1
#define EV_MUNMAP 2
#define EV_BRK 3
#define EV_MADVISE 4
#define EV_MREMAP 5

struct count_key {
	__u32 tgid;
	__u32 event;
	__u32 size_class; /* floor(log2(bytes)) + 1, 0 for no size */
	__u32 detail;     /* event-specific: see src/event.rs */
};

struct stack_key {
	__u32 tgid;
	__u32 event;
	__s32 stack_id; /* negative: the walk failed (errno) */
	__u32 pad;
};

struct value {
	__u64 events;
	__u64 bytes;
};

/* The traced processes (tgid -> 1), filled before attaching. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u8);
} pids SEC(".maps");

/* config[event]: take a stack on 1 event in N (per CPU). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 6);
	__type(key, __u32);
	__type(value, __u64);
} config SEC(".maps");

/* Per-CPU, per-event counter behind the 1-in-N choice. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 6);
	__type(key, __u32);
	__type(value, __u64);
} tick SEC(".maps");

/* Exact counts: every event of a traced process (per CPU: no atomics). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct count_key);
	__type(value, struct value);
} counts SEC(".maps");

/* Sampled events by user stack (per CPU). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct stack_key);
	__type(value, struct value);
} stack_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 16384);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, 127 * sizeof(__u64));
} stacks SEC(".maps");

/* Events that found a full map: index 0 counts, 1 stack counts. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/* The first successful listen() of each traced process: tgid -> the kernel's
 * CLOCK_MONOTONIC in ns when it returned (--cold-start: the time to listen,
 * read in the kernel so that a busy machine cannot delay it). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} first_listen SEC(".maps");

/* floor(log2(bytes)) + 1; 0 for 0 bytes. */
static __always_inline __u32 size_class(__u64 x)
{
	__u32 c = 0;
	if (x >> 32) { x >>= 32; c += 32; }
	if (x >> 16) { x >>= 16; c += 16; }
	if (x >> 8) { x >>= 8; c += 8; }
	if (x >> 4) { x >>= 4; c += 4; }
	if (x >> 2) { x >>= 2; c += 2; }
	if (x >> 1) { x >>= 1; c += 1; }
	return c + (x != 0);
}

/* Adds one event to a per-CPU hash map. BPF programs on tracepoints do not
 * nest on one CPU, so plain adds are safe. */
static __always_inline void add(void *map, const void *key, __u64 bytes, __u32 lost_index)
{
	struct value *v = bpf_map_lookup_elem(map, key);
	if (v) {
		v->events += 1;
		v->bytes += bytes;
		return;
	}
	struct value init = { .events = 1, .bytes = bytes };
	if (bpf_map_update_elem(map, key, &init, BPF_NOEXIST) != 0) {
		__u64 *l = bpf_map_lookup_elem(&lost, &lost_index);
		if (l)
			*l += 1;
	}
}

static __always_inline int record(void *ctx, __u32 event, __u64 bytes, __u32 detail)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!bpf_map_lookup_elem(&pids, &tgid))
		return 0;
	struct count_key ck = { .tgid = tgid, .event = event, .size_class = size_class(bytes), .detail = detail };
	add(&counts, &ck, bytes, 0);

	__u64 *every = bpf_map_lookup_elem(&config, &event);
	__u64 *t = bpf_map_lookup_elem(&tick, &event);
	if (!every || !t)
		return 0;
	__u64 n = *t + 1;
	if (n >= *every)
		n = 0;
	*t = n;
	if (n != 0)
		return 0;
	struct stack_key sk = { .tgid = tgid, .event = event, .stack_id = bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK) };
	add(&stack_counts, &sk, bytes, 1);
	return 0;
}

struct fault_args {
	__u64 common;
	__u64 address;
	__u64 ip;
	__u64 error_code;
};

SEC("tracepoint/exceptions/page_fault_user")
int page_fault_user(struct fault_args *ctx)
{
	/* detail: bit 0 write, bit 1 protection (the page was present) */
	return record(ctx, EV_FAULT, 0, ((ctx->error_code >> 1) & 1) | ((ctx->error_code & 1) << 1));
}

struct syscall_args {
	__u64 common;
	__u64 nr;
	__u64 args[6];
};

#define MAP_SHARED 0x01
#define MAP_FIXED 0x10
#define MAP_ANONYMOUS 0x20
#define MAP_POPULATE 0x8000

SEC("tracepoint/syscalls/sys_enter_mmap")
int sys_enter_mmap(struct syscall_args *ctx)
{
	__u64 flags = ctx->args[3];
	/* detail: bit 0 anonymous, 1 populate, 2 shared, 3 fixed; bits 8.. prot */
	__u32 detail = ((flags & MAP_ANONYMOUS) ? 1 : 0) | ((flags & MAP_POPULATE) ? 2 : 0) |
		       ((flags & MAP_SHARED) ? 4 : 0) | ((flags & MAP_FIXED) ? 8 : 0) |
		       ((__u32)(ctx->args[2] & 7) << 8);
	return record(ctx, EV_MMAP, ctx->args[1], detail);
}

SEC("tracepoint/syscalls/sys_enter_munmap")
int sys_enter_munmap(struct syscall_args *ctx)
{
	return record(ctx, EV_MUNMAP, ctx->args[1], 0);
}

SEC("tracepoint/syscalls/sys_enter_brk")
int sys_enter_brk(struct syscall_args *ctx)
{
	/* detail: 1 when the call only asks for the current break (brk(0)) */
	return record(ctx, EV_BRK, 0, ctx->args[0] == 0);
}

SEC("tracepoint/syscalls/sys_enter_madvise")
int sys_enter_madvise(struct syscall_args *ctx)
{
	return record(ctx, EV_MADVISE, ctx->args[1], (__u32)ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_enter_mremap")
int sys_enter_mremap(struct syscall_args *ctx)
{
	/* bytes: the new length; detail: the flags */
	return record(ctx, EV_MREMAP, ctx->args[2], (__u32)ctx->args[3]);
}

struct syscall_exit_args {
	__u64 common;
	__s32 nr;
	__s32 pad;
	__s64 ret;
};

SEC("tracepoint/syscalls/sys_exit_listen")
int sys_exit_listen(struct syscall_exit_args *ctx)
{
	if (ctx->ret != 0)
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!bpf_map_lookup_elem(&pids, &tgid))
		return 0;
	__u64 now = bpf_ktime_get_ns();
	/* BPF_NOEXIST: only the first listen counts */
	bpf_map_update_elem(&first_listen, &tgid, &now, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Following a cgroup's new processes from their first instruction: a new
 * task of a traced process that is a process (not a thread) joins the pid
 * filter at once, in the parent's context (task:task_newtask, in
 * copy_process, before the child runs); a process whose every thread ended
 * (sched:sched_process_exit with group_dead) leaves it, freeing its slot.
 * Only attached with --cgroup (children stay in their parent's cgroup). */
#define CLONE_THREAD 0x00010000

struct newtask_args {
	__u64 common;
	__s32 pid;
	char comm[16];
	__u32 pad;
	__u64 clone_flags;
};

SEC("tracepoint/task/task_newtask")
int task_newtask(struct newtask_args *ctx)
{
	__u32 parent = bpf_get_current_pid_tgid() >> 32;
	if (ctx->clone_flags & CLONE_THREAD)
		return 0;
	if (!bpf_map_lookup_elem(&pids, &parent))
		return 0;
	__u32 child = ctx->pid;
	__u8 one = 1;
	bpf_map_update_elem(&pids, &child, &one, BPF_NOEXIST);
	return 0;
}

struct exit_args {
	__u64 common;
	char comm[16];
	__s32 pid;
	__s32 prio;
	__u8 group_dead;
};

SEC("tracepoint/sched/sched_process_exit")
int sched_process_exit(struct exit_args *ctx)
{
	if (!ctx->group_dead)
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	bpf_map_delete_elem(&pids, &tgid);
	return 0;
}
