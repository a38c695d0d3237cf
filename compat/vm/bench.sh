#!/usr/bin/env bash
# compat/vm/bench.sh [BENCH ARGS...]: runs the load generator (target/release/bench) inside a
# small KVM guest, for what this machine's sandbox cannot do: scenario 8 at 100,000 members
# needs ~100,000 descriptors in the server and as many in the bench, while the hard
# RLIMIT_NOFILE here is 20,000 and CAP_SYS_RESOURCE is missing. The guest is a Debian kernel
# with everything else in an initramfs (busybox, the two release binaries, redis-server and the
# shared libraries they link); its /init (compat/vm/init) raises the limits as root, starts
# Redis, runs `bench ARGS...` in /whisper (the bench's default paths work there:
# target/release/whisper, an empty compat/; /bin/whisper and /bin/bench exist too) and powers
# off. The guest's console is printed here and saved to target/vm/last-run.txt; the script
# exits with the bench's status.
#
# Example (scenario 8 at its full size, Whisper and the bare server):
#   compat/vm/bench.sh --scenario 8 --members 100000 --member-rooms 1000 --target whisper,bare
#
# The Python targets (uvicorn, daphne) cannot run in the guest: it has no Python.
#
# Environment: VM_CPUS (default 2), VM_MEM (default 12G), VM_TIMEOUT (the whole guest, as
# timeout(1) takes it; default 4h), VM_ACCEL (auto, kvm or tcg: see below), VM_APPEND (more
# kernel parameters). Needs root (apt-get, /dev/kvm). Manual tool only: neither CI
# nor the tests call it.
#
# Cached under target/vm/: the kernel (vmlinuz, kernel-release), busybox, the initramfs and its
# stamp (rebuilt when a binary, a library, /init or this script changed). The release binaries
# are used as they are; they are built only when missing.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here="$repo/compat/vm"
vm="$repo/target/vm"
cpus=${VM_CPUS:-2}
mem=${VM_MEM:-12G}
deadline=${VM_TIMEOUT:-4h}
accel=${VM_ACCEL:-auto}
mkdir -p "$vm"

say() { echo "bench.sh: $*" >&2; }

# Debian packages: install (qemu) or download (kernel, busybox) only what is missing. apt's
# lists may be absent or old on a fresh machine: update them once when a look-up fails.
apt_updated=
apt_update() {
    if [ -z "$apt_updated" ]; then
        say "apt-get update"
        apt-get update -qq
        apt_updated=1
    fi
}
apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2 ||
        { apt_update && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2; }
}
# apt_extract PACKAGE DIR: downloads PACKAGE's .deb and unpacks it into DIR (emptied first).
apt_extract() {
    local dl
    dl=$(mktemp -d "$vm/download.XXXXXX")
    (cd "$dl" && apt-get download -qq "$1" 2>/dev/null) ||
        { apt_update && (cd "$dl" && apt-get download -qq "$1"); }
    rm -rf "$2"
    dpkg-deb -x "$dl"/*.deb "$2"
    rm -rf "$dl"
}

# The accelerator. KVM needs a /dev/kvm that runs an ordinary kernel. This machine's /dev/kvm is
# kvm_pvm's (a Firecracker VM's nested "pagetable-based" KVM, /sys/module/kvm_pvm): it boots only
# PVM-aware guest kernels. Debian's kernel, from the bzImage, hangs in its decompressor; from the
# uncompressed vmlinux (PVH entry) it crawls through instruction emulation (a minute to reach the
# FPU setup) and then stops with "KVM internal error. Suberror: 1" (cmpxchg16b, xrstors, int3).
# So "auto" takes TCG, QEMU's own emulation, there: slower, but an ordinary Linux that can hold
# 100,000 sockets. VM_ACCEL=kvm or tcg forces one.
if [ "$accel" = auto ]; then
    if [ -w /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ]; then accel=kvm; else accel=tcg; fi
fi
case "$accel" in
kvm)
    [ -w /dev/kvm ] || { say "/dev/kvm is missing or not writable"; exit 1; }
    # arch-capabilities: QEMU 7.2 asserts when the host refuses MSR 0x10a (seen under kvm_pvm).
    accel_args=(-accel kvm -cpu host,-arch-capabilities)
    ;;
tcg)
    # Multi-threaded TCG: one host thread per vCPU; max: every feature TCG emulates.
    accel_args=(-accel tcg,thread=multi -cpu max)
    ;;
*) say "VM_ACCEL must be auto, kvm or tcg, not $accel"; exit 1 ;;
esac
kernel_args=
if [ "$accel" = tcg ]; then
    # Under TCG the kernel finds no PIT to calibrate the TSC against and falls back to the HPET:
    # every clock_gettime is then a syscall and an emulated MMIO read, and Tokio reads the clock
    # all the time. TCG's TSC follows the host's clock, so trust it (vDSO clock reads again).
    kernel_args="tsc=reliable clocksource=tsc"
fi
command -v qemu-system-x86_64 >/dev/null || apt_install qemu-system-x86
# redis-tools holds Debian's Redis server binary (redis-check-rdb, which is redis-server when
# called by that name) without the redis-server package's service.
command -v redis-check-rdb >/dev/null || apt_install redis-tools

# The kernel: Debian's cloud flavour (virtio, serial console, tmpfs, devtmpfs built in; no module
# is needed, since nothing but lo and the initramfs is used).
if [ ! -s "$vm/vmlinuz" ] || [ ! -s "$vm/kernel-release" ]; then
    pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
    if [ -z "$pkg" ]; then
        apt_update
        pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
    fi
    say "downloading the kernel ($pkg)"
    apt_extract "$pkg" "$vm/kernel.x"
    cp "$vm"/kernel.x/boot/vmlinuz-* "$vm/vmlinuz"
    basename "$vm"/kernel.x/boot/vmlinuz-* | sed 's/^vmlinuz-//' >"$vm/kernel-release"
    rm -rf "$vm/kernel.x"
fi
# Busybox, statically linked: the guest's shell and tools, and the host's cpio -o here.
if [ ! -x "$vm/busybox" ]; then
    say "downloading busybox-static"
    apt_extract busybox-static "$vm/busybox.x"
    cp "$vm/busybox.x/bin/busybox" "$vm/busybox"
    rm -rf "$vm/busybox.x"
fi

# The release binaries, as they are (built only when missing).
whisper="$repo/target/release/whisper"
bench="$repo/target/release/bench"
if [ ! -x "$whisper" ] || [ ! -x "$bench" ]; then
    say "building the release binaries"
    (cd "$repo" && cargo build --release --bins >&2)
fi
redis=$(command -v redis-check-rdb)

# Shared libraries of the guest's dynamic binaries (and the loader), as ldd resolves them here.
libs=$(ldd "$whisper" "$bench" "$redis" |
    awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $1 !~ /:$/ {print $1}' | sort -u)

# The initramfs, rebuilt only when something that goes into it changed.
stamp=$( (sha256sum "$whisper" "$bench" "$redis" "$vm/busybox" "$here/init" "${BASH_SOURCE[0]}" $libs) | sha256sum | cut -d' ' -f1)
if [ ! -s "$vm/initramfs.cpio.gz" ] || [ "$(cat "$vm/initramfs.stamp" 2>/dev/null)" != "$stamp" ]; then
    say "building the initramfs"
    root="$vm/root"
    rm -rf "$root"
    mkdir -p "$root"/{bin,dev,proc,sys,tmp,root,etc,whisper/target/release,whisper/compat}
    cp "$vm/busybox" "$root/bin/busybox"
    cp "$here/init" "$root/init"
    chmod 755 "$root/init"
    cp "$whisper" "$bench" "$root/whisper/target/release/"
    ln -s /whisper/target/release/whisper "$root/bin/whisper"
    ln -s /whisper/target/release/bench "$root/bin/bench"
    cp "$redis" "$root/bin/redis-server"
    for lib in $libs; do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
    printf 'root:x:0:\n' >"$root/etc/group"
    printf '127.0.0.1 localhost whisper-vm\n::1 localhost\n' >"$root/etc/hosts"
    (cd "$root" && find . | "$vm/busybox" cpio -o -H newc 2>/dev/null) | gzip -1 >"$vm/initramfs.cpio.gz.new"
    mv "$vm/initramfs.cpio.gz.new" "$vm/initramfs.cpio.gz"
    echo "$stamp" >"$vm/initramfs.stamp"
    rm -rf "$root"
fi

# This run's arguments, one per line, in a second archive appended to the cached one (the
# kernel unpacks concatenated archives in turn).
args="$vm/args"
rm -rf "$args"
mkdir -p "$args"
if [ "$#" -gt 0 ]; then printf '%s\n' "$@" >"$args/bench-args"; else : >"$args/bench-args"; fi
(cd "$args" && echo bench-args | "$vm/busybox" cpio -o -H newc 2>/dev/null) | gzip -1 >"$vm/args.cpio.gz"
cat "$vm/initramfs.cpio.gz" "$vm/args.cpio.gz" >"$vm/run.cpio.gz"
rm -rf "$args" "$vm/args.cpio.gz"

say "booting $(cat "$vm/kernel-release") ($accel) with $cpus vCPUs and $mem of RAM: bench $*"
started=$SECONDS
# No devices but the serial console (stdio); the guest powers off at the end, and a panic or a
# reboot ends QEMU too (panic=-1 reboots at once, -no-reboot turns that into an exit). timeout
# bounds the whole run so no QEMU outlives it.
set +e
timeout --kill-after=30 "$deadline" qemu-system-x86_64 \
    "${accel_args[@]}" -smp "$cpus" -m "$mem" \
    -nodefaults -no-user-config -display none -monitor none -serial stdio -no-reboot \
    -kernel "$vm/vmlinuz" -initrd "$vm/run.cpio.gz" \
    -append "console=ttyS0 quiet panic=-1 $kernel_args ${VM_APPEND:-}" </dev/null |
    tr -d '\r' | tee "$vm/last-run.txt"
qemu_status=${PIPESTATUS[0]}
set -e
rm -f "$vm/run.cpio.gz"
say "the guest ran $((SECONDS - started)) s (QEMU exit status $qemu_status); console saved to $vm/last-run.txt"

bench_status=$(sed -n 's/^guest: bench exited with status \([0-9]*\)$/\1/p' "$vm/last-run.txt" | tail -n 1)
if [ -z "$bench_status" ]; then
    say "the guest ended before the bench did (timeout, panic or power loss)"
    exit 1
fi
exit "$bench_status"
