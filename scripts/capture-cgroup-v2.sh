#!/usr/bin/env bash
# capture-cgroup-v2.sh - capture a REAL cgroup v2 memory-controller fixture tree.
#
# The development host mounts the memory controller only as cgroup v1, so this
# script boots a stock Debian kernel under qemu (TCG software emulation by
# default, see ACCEL below) with a tiny busybox initramfs whose /init:
#   1. mounts cgroup2 at /sys/fs/cgroup and enables +memory for children;
#   2. creates memlens-fixture (max 64M, high 48M, low 8M, min 4M, swap.max 0)
#      and runs a static "hog" in it that touches 32 MiB and then sleeps;
#      captures the root's and memlens-fixture's files while the hog is alive,
#      plus /proc/self/mountinfo, /proc/<hog>/cgroup and /proc/pressure/memory;
#   3. creates memlens-oom (max 32M, swap.max 0), runs an unbounded hog in it,
#      waits until the kernel OOM-kills it and captures that cgroup's files;
#   4. powers off.
# Captured files travel over a second serial port (guest ttyS1 -> data.log),
# base64-encoded between markers so that exact bytes (empty files, trailing
# newlines) survive; kernel messages go to the first port (console.log) and
# cannot interleave with the data. The host then splits data.log into
#   crates/linux/testdata/linux<MAJOR.MINOR>-v2-qemu/
#
# Usage (as root, Debian bookworm host with access to the Debian archive):
#   scripts/capture-cgroup-v2.sh
# Environment overrides:
#   WORK=/tmp/cgv2          scratch directory (wiped parts: initramfs, logs)
#   KPKG=linux-image-...    kernel package (default: what linux-image-amd64 depends on)
#   QEMU_TIMEOUT=900        seconds before the guest is killed
#   ACCEL=tcg               qemu accelerator. TCG (software emulation) is the default:
#                           on the capture host /dev/kvm existed but nested KVM failed
#                           (-cpu max/host: "failed to set MSR 0x10a"; with
#                           -arch-capabilities the guest hung after "Probing EDD").
#                           TCG boots and captures in ~15 s. ACCEL=kvm uses -cpu host.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${WORK:-/tmp/cgv2}"
QEMU_TIMEOUT="${QEMU_TIMEOUT:-900}"
mkdir -p "$WORK"
cd "$WORK"

# --- 1. host packages ---------------------------------------------------------
need_install=()
command -v qemu-system-x86_64 >/dev/null || need_install+=(qemu-system-x86)
[ -x /bin/busybox ] && file -L /bin/busybox 2>/dev/null | grep -q 'statically linked' \
    || need_install+=(busybox-static)
command -v cpio >/dev/null || need_install+=(cpio)
command -v gcc >/dev/null || need_install+=(gcc libc6-dev)
command -v file >/dev/null || need_install+=(file)
if [ "${#need_install[@]}" -gt 0 ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_install[@]}" file
fi

# --- 2. Debian kernel: download the package, unpack it, do not install it -----
if [ -z "${KPKG:-}" ]; then
    KPKG="$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')"
fi
[ -n "$KPKG" ] || { echo "cannot resolve the kernel package (run apt-get update?)" >&2; exit 1; }
rm -rf k && mkdir k
rm -f "$KPKG"_*.deb
apt-get download "$KPKG"
dpkg-deb -x "$KPKG"_*.deb k
KVER_PKG="$(dpkg-deb -f "$KPKG"_*.deb Version)"   # e.g. 6.1.192-2 (upstream 6.1.192)
VMLINUZ="$(ls k/boot/vmlinuz-*)"
KCONFIG="$(ls k/boot/config-*)"
echo "kernel package $KPKG version $KVER_PKG -> $VMLINUZ"
# The features the capture relies on must be built in (no modules in the initramfs).
for opt in CONFIG_CGROUPS CONFIG_MEMCG CONFIG_PSI CONFIG_DEVTMPFS CONFIG_BLK_DEV_INITRD \
           CONFIG_RD_GZIP CONFIG_SERIAL_8250_CONSOLE; do
    grep -qx "$opt=y" "$KCONFIG" || { echo "$opt is not =y in $KCONFIG" >&2; exit 1; }
done

# --- 3. the memory hog (static, runs in the initramfs) ------------------------
cat > hog.c <<'EOF'
/* hog MIB: malloc+write 1 MiB at a time up to MIB MiB, print READY, sleep forever.
 * hog 0:   grow without bound (stops at a 1 GiB safety cap) - to be OOM-killed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long target = argc > 1 ? atol(argv[1]) : 32;
    long cap = target > 0 ? target : 1024;
    for (long i = 0; i < cap; i++) {
        char *p = malloc(1 << 20);
        if (!p) { printf("MALLOC FAILED at %ld MiB\n", i); fflush(stdout); return 2; }
        memset(p, 0x5a, 1 << 20);  /* non-zero writes: every page really faults in */
    }
    printf(target > 0 ? "READY %ld MiB\n" : "CAP REACHED %ld MiB\n", cap);
    fflush(stdout);
    for (;;) pause();
}
EOF
gcc -static -O2 -o hog hog.c

# --- 4. initramfs: busybox + hog + /init ---------------------------------------
rm -rf initramfs && mkdir -p initramfs/{bin,dev,proc,sys,tmp}
cp /bin/busybox initramfs/bin/busybox
cp hog initramfs/hog
mknod -m 600 initramfs/dev/console c 5 1   # the kernel opens it before /init runs

cat > initramfs/init <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t cgroup2 none /sys/fs/cgroup
echo "memlens-capture: init started, uptime $(cut -d' ' -f1 /proc/uptime)s"

# Data channel: ttyS1, raw (no \n -> \r\n translation).
stty -F /dev/ttyS1 raw -echo 115200 || true
exec 3>/dev/ttyS1
CG=/sys/fs/cgroup

# emit NAME PATH: one file, base64 between markers; absent/unreadable files are noted.
emit() {
    if [ ! -e "$2" ]; then echo "=====ABSENT $1" >&3; return 0; fi
    if cat "$2" > /tmp/emit.bin 2> /tmp/emit.err; then
        echo "=====FILE $1 bytes=$(wc -c < /tmp/emit.bin)" >&3
        base64 /tmp/emit.bin >&3
        echo "=====END $1" >&3
    else
        echo "=====UNREADABLE $1 $(tr '\n' ' ' < /tmp/emit.err)" >&3
    fi
}
# emit_cgroup DIRNAME PATH: every memory.* file plus the cgroup.* core files.
emit_cgroup() {
    for f in "$2"/memory.*; do emit "$1/${f##*/}" "$f"; done
    for f in cgroup.procs cgroup.controllers cgroup.subtree_control cgroup.type; do
        emit "$1/$f" "$2/$f"
    done
}
# emit_text NAME TEXT: a small metadata note (not a kernel file).
emit_text() { printf '%s\n' "$2" > /tmp/emit.txt; emit "$1" /tmp/emit.txt; }

echo "=====BEGIN" >&3
emit _meta/proc-version /proc/version
emit _meta/cmdline /proc/cmdline

echo +memory > $CG/cgroup.subtree_control

# --- alive capture: hog at 32 MiB inside memlens-fixture ---
FX=$CG/memlens-fixture
mkdir $FX
echo 64M > $FX/memory.max
echo 48M > $FX/memory.high
echo 8M  > $FX/memory.low
echo 4M  > $FX/memory.min
[ -e $FX/memory.swap.max ] && echo 0 > $FX/memory.swap.max
sh -c "echo \$\$ > $FX/cgroup.procs; exec /hog 32" > /tmp/hog1.out 2>&1 &
HOG1=$!
i=0
until grep -q READY /tmp/hog1.out; do
    i=$((i + 1)); [ $i -gt 600 ] && break; sleep 0.2
done
cat /tmp/hog1.out
sleep 2   # let the counters and PSI averages settle a moment
emit_cgroup root $CG
emit_cgroup memlens-fixture $FX
emit mountinfo.txt /proc/self/mountinfo
emit proc-pid-cgroup.txt /proc/$HOG1/cgroup
emit pressure-memory.txt /proc/pressure/memory
emit_text _meta/hog1 "$(cat /tmp/hog1.out)"
kill $HOG1; wait $HOG1 2>/dev/null || true

# --- OOM capture: unbounded hog inside memlens-oom (max 32M) ---
OOM=$CG/memlens-oom
mkdir $OOM
echo 32M > $OOM/memory.max
[ -e $OOM/memory.swap.max ] && echo 0 > $OOM/memory.swap.max
sh -c "echo \$\$ > $OOM/cgroup.procs; exec /hog 0" > /tmp/hog2.out 2>&1 &
HOG2=$!
rc=0; wait $HOG2 || rc=$?
echo "oom hog exited with status $rc"
sleep 1
emit_cgroup memlens-oom $OOM
out=$(cat /tmp/hog2.out)
emit_text _meta/hog2 "exit status $rc (137 = SIGKILL); output: ${out:-none, killed before printing}"
emit _meta/uptime /proc/uptime
dmesg > /tmp/dmesg.txt
emit dmesg.txt /tmp/dmesg.txt
echo "=====DONE" >&3
exec 3>&-
sync
echo "memlens-capture: done, powering off"
poweroff -f
EOF
chmod 755 initramfs/init
(cd initramfs && find . | cpio -o -H newc --quiet | gzip -9) > initramfs.cpio.gz

# --- 5. boot ---------------------------------------------------------------------
rm -f console.log data.log
ACCEL="${ACCEL:-tcg}"
CPU=max; [ "$ACCEL" = kvm ] && CPU=host
start=$(date +%s)
timeout "$QEMU_TIMEOUT" qemu-system-x86_64 -accel "$ACCEL" -cpu "$CPU" -smp 1 -m 512 \
    -kernel "$VMLINUZ" -initrd initramfs.cpio.gz \
    -append "console=ttyS0 rdinit=/init psi=1 panic=-1" \
    -display none -no-reboot -nic none \
    -serial file:console.log -serial file:data.log
BOOT_SECONDS=$(( $(date +%s) - start ))
echo "guest ran for ${BOOT_SECONDS}s"
grep -q '^=====DONE' data.log || { echo "capture incomplete; see $WORK/console.log" >&2; exit 1; }

# --- 6. split data.log into the fixture tree -------------------------------------
MAJMIN="$(echo "$KVER_PKG" | cut -d. -f1,2)"
OUT="$REPO/crates/linux/testdata/linux${MAJMIN}-v2-qemu"
rm -rf "$OUT" split && mkdir -p "$OUT" split
tr -d '\r' < data.log > data.clean
# Each FILE block -> split/<name>.b64 ; then decode and check the byte count.
awk -v dir=split '
    /^=====FILE / { name = $2; bytes[name] = substr($3, 7); f = dir "/" name ".b64";
                    d = f; sub(/\/[^\/]*$/, "", d); system("mkdir -p \"" d "\"");
                    printf "" > f; inblock = 1; next }
    /^=====END /  { close(f); inblock = 0; print name, bytes[name] > (dir "/index"); next }
    /^=====/      { print > (dir "/notes"); next }
    inblock       { print >> f }
' data.clean
while read -r name bytes; do
    base64 -d "split/$name.b64" > "split/$name"
    got=$(wc -c < "split/$name")
    [ "$got" = "$bytes" ] || { echo "size mismatch for $name: $got != $bytes" >&2; exit 1; }
    case "$name" in _meta/*) continue ;; esac
    mkdir -p "$OUT/$(dirname "$name")"
    cp "split/$name" "$OUT/$name"
done < split/index

# --- 7. README ---------------------------------------------------------------------
{
cat <<EOF
cgroup v2 memory-controller fixtures, captured for real in a qemu guest.

Kernel:   $(cat split/_meta/proc-version)
          Debian package $KPKG $KVER_PKG (unmodified, booted with -kernel)
Cmdline:  $(cat split/_meta/cmdline)
Guest:    qemu-system-x86_64 -accel $ACCEL -cpu $CPU -smp 1 -m 512, busybox initramfs,
          no swap device; guest ran ${BOOT_SECONDS}s (boot + capture + poweroff)
Captured: $(date -u +%Y-%m-%d) by scripts/capture-cgroup-v2.sh (run it again to redo all of this)

The guest mounted cgroup2 on /sys/fs/cgroup (no other hierarchy), wrote +memory to
the root's cgroup.subtree_control, then:

root/             the root cgroup, captured while the hog below was alive. The root
                  has far fewer memory.* files than a child cgroup (no limits, no
                  events, no current/peak) and no cgroup.type.
memlens-fixture/  a cgroup with memory.max=64M, memory.high=48M, memory.low=8M,
                  memory.min=4M, memory.swap.max=0, holding one live process that had
                  malloc'd and written 32 MiB in 1 MiB steps and then slept
                  (hog output: $(cat split/_meta/hog1)).
memlens-oom/      a cgroup with memory.max=32M, memory.swap.max=0 whose only process
                  grew without bound until the kernel OOM-killed it; captured after it
                  died (so cgroup.procs is empty and memory.current is what remained).
                  Hog: $(cat split/_meta/hog2)
mountinfo.txt         /proc/self/mountinfo in the guest (cgroup2 only, no v1).
proc-pid-cgroup.txt   /proc/<hog pid>/cgroup of the memlens-fixture process.
pressure-memory.txt   /proc/pressure/memory, at the same moment as root/ and memlens-fixture/.
dmesg.txt             the guest's kernel log, ending with the OOM-kill report for memlens-oom.

Files are byte-exact copies (they crossed the serial line base64-encoded).
EOF
for d in root memlens-fixture memlens-oom; do
    echo
    echo "$d/ holds: $(cd "$OUT/$d" && ls | tr '\n' ' ')"
done | fold -s -w 88
if [ -s split/notes ]; then
    echo
    echo "Not captured (absent or unreadable in this kernel):"
    grep -v -e '^=====BEGIN' -e '^=====DONE' split/notes | sed 's/^=====/  /'
fi
} > "$OUT/README.txt"

echo "fixture tree written to $OUT"
find "$OUT" -type f | sort
