#!/usr/bin/env bash
# compat/vm/bench.sh [BENCH ARGS...]: runs the load generator (target/release/bench) inside a
# Linux guest of its own, for what this machine's sandbox cannot do: scenario 8 at 100,000
# members needs ~100,000 descriptors in the server and as many in the bench, while the hard
# RLIMIT_NOFILE here is 20,000 and CAP_SYS_RESOURCE is missing. The guest is a Debian kernel with
# everything else in an initramfs (busybox, the two release binaries, redis-server and the
# shared libraries they link); its /init (compat/vm/init) raises the limits as root, starts
# Redis, runs `bench ARGS...` in /whisper (the bench's default paths work there:
# target/release/whisper, an empty compat/; /bin/whisper and /bin/bench exist too) and powers
# off. The guest's console is printed here and saved to target/vm/last-run.txt; the script
# exits with the bench's status.
#
# Example (scenario 8 at its full size; --keep prints the server's warnings at the end):
#   VM_ACCEL=uml VM_ENV="WS_PING_TIMEOUT=7200" compat/vm/bench.sh --scenario 8 \
#     --members 100000 --member-rooms 1000 --target whisper --connect-limit 3000 --keep
#
# Why WS_PING_TIMEOUT: Whisper drops a socket silent for WS_PING_INTERVAL + WS_PING_TIMEOUT
# (20 + 30 s), and the bench does not read (so does not answer pings on) the members it has
# joined until all of them are; a join phase longer than that (any guest run above a few
# thousand members; 100,000 take ~25 minutes under UML) loses its first members. The servers
# inherit the bench's environment.
#
# Guests (VM_ACCEL):
# * kvm: QEMU with KVM, Debian's cloud kernel (bzImage), VM_CPUS vCPUs. Needs a /dev/kvm that
#   boots an ordinary kernel. This machine's does not: it is kvm_pvm's (the Firecracker VM's
#   nested "pagetable-based" KVM, /sys/module/kvm_pvm), made for PVM-aware guest kernels. Debian's
#   kernel hangs in its decompressor there; its uncompressed vmlinux (PVH entry) crawls through
#   instruction emulation (a minute to reach the FPU setup) and stops with "KVM internal error.
#   Suberror: 1" (on cmpxchg16b, xrstors, int3).
# * tcg: the same QEMU guest under QEMU's own emulation (multi-threaded, VM_CPUS vCPUs): about
#   ten times slower than the host everywhere; Whisper then joins ~160 members/s, too slow for
#   100,000 within the bench's 600 s connect limit.
# * uml: User-mode Linux (Debian's user-mode-linux, a 6.1 kernel as a host process): one CPU
#   only (VM_CPUS is ignored), user code at native speed, system calls and scheduling slower.
#   Whisper joins ~75 members/s there (2026-12-07), so 100,000 need --connect-limit. Its memory is a file in /dev/shm (VM_MEM of host RAM
#   at most, used as the guest touches it).
# * auto (default): kvm where /dev/kvm works and is not kvm_pvm's, uml otherwise.
#
# Environment: VM_ACCEL (above), VM_CPUS (default 2), VM_MEM (default 12G), VM_TIMEOUT (the
# whole guest, as timeout(1) takes it; default 4h), VM_ENV (NAME=VALUE ... exported in the
# guest before the bench: settings for the servers it starts), VM_APPEND (more kernel
# parameters). Needs root (apt-get). A manual tool: neither CI nor the tests call it.
#
# Cached under target/vm/: the kernels (vmlinuz, linux.uml and their *-release), busybox, the
# initramfs and its stamp (rebuilt when a binary, a library, /init or this script changed). The
# release binaries are used as they are; they are built only when missing.
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

# Debian packages: install (qemu, redis-tools) or download (kernels, busybox) only what is
# missing. apt's lists may be absent or old on a fresh machine: update them once when a look-up
# fails.
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
    dpkg-deb -f "$dl"/*.deb Package Version | awk '{printf "%s%s", sep, $2; sep = " "} END {print ""}' >"$2/.deb-version"
    rm -rf "$dl"
}

if [ "$accel" = auto ]; then
    if [ -w /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ]; then accel=kvm; else accel=uml; fi
fi
case "$accel" in
kvm | tcg | uml) ;;
*) say "VM_ACCEL must be auto, kvm, tcg or uml, not $accel"; exit 1 ;;
esac
if [ "$accel" = kvm ] && [ ! -w /dev/kvm ]; then
    say "/dev/kvm is missing or not writable"
    exit 1
fi

# redis-tools holds Debian's Redis server binary (redis-check-rdb, which is redis-server when
# called by that name) without the redis-server package's service.
command -v redis-check-rdb >/dev/null || apt_install redis-tools

if [ "$accel" = uml ]; then
    # UML maps the guest's pages into its processes one mapping at a time: at the default
    # vm.max_map_count (65,530) the host refused a mapping near 83,000 members ("UML ran out
    # of memory on the host side") and the guest's server answered SERVICE_UNAVAILABLE.
    if [ "$(cat /proc/sys/vm/max_map_count)" -lt 1048576 ]; then
        say "raising vm.max_map_count to 1048576 (UML maps guest pages one by one)"
        echo 1048576 >/proc/sys/vm/max_map_count ||
            say "cannot raise vm.max_map_count: a guest of many members may run out of mappings"
    fi
    # The User-mode Linux kernel, a static host executable.
    if [ ! -x "$vm/linux.uml" ] || [ ! -s "$vm/linux.uml-release" ]; then
        say "downloading user-mode-linux"
        apt_extract user-mode-linux "$vm/uml.x"
        cp "$vm/uml.x/usr/bin/linux.uml" "$vm/linux.uml"
        cp "$vm/uml.x/.deb-version" "$vm/linux.uml-release"
        rm -rf "$vm/uml.x"
    fi
else
    command -v qemu-system-x86_64 >/dev/null || apt_install qemu-system-x86
    # Debian's cloud kernel: serial console, tmpfs, devtmpfs, virtio built in; no module is
    # needed, since nothing but lo and the initramfs is used.
    if [ ! -s "$vm/vmlinuz" ] || [ ! -s "$vm/vmlinuz-release" ]; then
        pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
        if [ -z "$pkg" ]; then
            apt_update
            pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
        fi
        say "downloading the kernel ($pkg)"
        apt_extract "$pkg" "$vm/kernel.x"
        cp "$vm"/kernel.x/boot/vmlinuz-* "$vm/vmlinuz"
        cp "$vm/kernel.x/.deb-version" "$vm/vmlinuz-release"
        rm -rf "$vm/kernel.x"
    fi
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

# This run's arguments (one per line) and VM_ENV (one NAME=VALUE per line), in a second archive
# appended to the cached one (the kernel unpacks concatenated archives in turn).
extra="$vm/extra"
rm -rf "$extra"
mkdir -p "$extra"
: >"$extra/bench-args"
if [ "$#" -gt 0 ]; then printf '%s\n' "$@" >"$extra/bench-args"; fi
: >"$extra/bench-env"
for pair in ${VM_ENV:-}; do
    case "$pair" in
    [A-Za-z_]*=*) printf '%s\n' "$pair" >>"$extra/bench-env" ;;
    *) say "VM_ENV: not NAME=VALUE: $pair"; exit 1 ;;
    esac
done
(cd "$extra" && printf 'bench-args\nbench-env\n' | "$vm/busybox" cpio -o -H newc 2>/dev/null) | gzip -1 >"$vm/extra.cpio.gz"
cat "$vm/initramfs.cpio.gz" "$vm/extra.cpio.gz" >"$vm/run.cpio.gz"
rm -rf "$extra" "$vm/extra.cpio.gz"

# The guest command line. No devices but the console; the guest powers off at the end; a panic
# ends the guest too (panic=-1: reboot at once, which -no-reboot / UML turn into an exit).
# timeout bounds the whole run so that no guest outlives it.
append="quiet panic=-1 ${VM_APPEND:-}"
case "$accel" in
uml)
    release="$(cat "$vm/linux.uml-release") (User-mode Linux, 1 CPU)"
    # con0: the console on this process's stdin/stdout; the guest's memory is a file in TMPDIR.
    guest=(env TMPDIR=/dev/shm "$vm/linux.uml" "mem=$mem" "initrd=$vm/run.cpio.gz"
        con0=null,fd:1 con=null $append)
    ;;
*)
    release="$(cat "$vm/vmlinuz-release") ($accel, $cpus vCPUs)"
    if [ "$accel" = kvm ]; then
        # arch-capabilities off: QEMU 7.2 asserts when the host refuses MSR 0x10a (kvm_pvm).
        qemu_accel=(-accel kvm -cpu host,-arch-capabilities)
    else
        # Multi-threaded TCG, one host thread per vCPU. Without a PIT to calibrate against, the
        # guest would fall back to the HPET (every clock read an emulated MMIO access, and Tokio
        # reads the clock all the time); TCG's TSC follows the host's clock: trust it.
        qemu_accel=(-accel tcg,thread=multi -cpu max)
        append="$append tsc=reliable clocksource=tsc"
    fi
    guest=(qemu-system-x86_64 "${qemu_accel[@]}" -smp "$cpus" -m "$mem"
        -nodefaults -no-user-config -display none -monitor none -serial stdio -no-reboot
        -kernel "$vm/vmlinuz" -initrd "$vm/run.cpio.gz" -append "console=ttyS0 $append")
    ;;
esac

say "booting $release with $mem of RAM${VM_ENV:+, env $VM_ENV}: bench $*"
started=$SECONDS
set +e
timeout --kill-after=30 "$deadline" "${guest[@]}" </dev/null | tr -d '\r' | tee "$vm/last-run.txt"
guest_status=${PIPESTATUS[0]}
set -e
rm -f "$vm/run.cpio.gz"
say "the guest ran $((SECONDS - started)) s (exit status $guest_status); console saved to $vm/last-run.txt"

bench_status=$(sed -n 's/^guest: bench exited with status \([0-9]*\)$/\1/p' "$vm/last-run.txt" | tail -n 1)
if [ -z "$bench_status" ]; then
    say "the guest ended before the bench did (timeout, panic or power loss)"
    exit 1
fi
exit "$bench_status"
