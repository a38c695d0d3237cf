#!/usr/bin/env bash
# tests/docker/base_images.sh — owns the base images the Docker test builds on. No image can be
# pulled on this machine, so they are made from Debian's packages:
#
#   runtime  debootstrap --variant=minbase bookworm          stands in for debian:bookworm-slim
#   builder  minbase + gcc, libc6-dev, ca-certificates, and  stands in for rust:1.95-slim-bookworm
#            a copy of this machine's Rust toolchain (the
#            one `rustc` runs here: bin/{cargo,rustc} and
#            lib/, no docs) in /usr/local/rust,
#            CARGO_HOME=/usr/local/cargo as in rust:*
#   python   minbase + python3, python3-venv                 stands in for python:3.11-slim-bookworm
#
# builder and python also get this machine's CA bundle (/etc/ssl/certs/ca-certificates.crt):
# its outbound HTTPS (crates.io, PyPI) goes through a proxy whose CA only that bundle trusts; a
# public base image needs nothing of the kind. pip in the python image is told to use it.
#
# Each image is `docker import`ed from a root file system tarball. Both layers of caching live on
# the machine and survive between runs: the images in Docker's store (tags below; an image that
# exists is reused as is), and the debootstrap tarballs and .debs in /var/cache/whisper-docker/
# (WHISPER_DOCKER_CACHE), so a pruned image store costs an import, not a debootstrap. Bump
# ROOTFS when what debootstrap makes changes, IMAGE when what is imported on top does; the tags
# also carry the builder's Rust version and the CA bundle's hash.
#
# Prints `BUILDER_IMAGE=…`, `RUNTIME_IMAGE=…`, `PYTHON_IMAGE=…` on stdout (progress on stderr).
# Needs root (debootstrap) and a running daemon (tests/docker/engine.sh).
set -euo pipefail

ROOTFS=2
IMAGE=2
# The PATH the public images set in their config (an imported image has none).
PATH_ENV='ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
SUITE=bookworm
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE="${WHISPER_DOCKER_CACHE:-/var/cache/whisper-docker}"
DOCKER=/usr/bin/docker
mkdir -p "$CACHE/debs"

# One run at a time makes or imports images (parallel test runs wait here).
exec 9>"$CACHE/lock"
flock 9

have_image() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

# rootfs_tarball NAME PACKAGES: $CACHE/NAME.tar, made by debootstrap when missing; prints its path.
rootfs_tarball() {
  local name="$1" include="$2" tarball="$CACHE/$1.tar" dir
  if [ ! -s "$tarball" ]; then
    dir="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
    chmod 0755 "$dir" # it becomes the image's /; mktemp makes it 0700
    echo "base_images.sh: debootstrap $name ($SUITE, minbase${include:+ + $include})" >&2
    local start=$SECONDS
    debootstrap --variant=minbase ${include:+--include="$include"} \
      --cache-dir="$CACHE/debs" "$SUITE" "$dir" "$MIRROR" >"$CACHE/$name.debootstrap.log" 2>&1 || {
      echo "base_images.sh: debootstrap failed; the end of $CACHE/$name.debootstrap.log:" >&2
      tail -n 20 "$CACHE/$name.debootstrap.log" >&2
      rm -rf "$dir"
      exit 1
    }
    # What a -slim image leaves out: package lists, docs, man pages, translations.
    rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/usr/share/doc/* \
      "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/usr/share/locale/*
    # The container's resolver is the daemon's business (it bind-mounts its own files).
    : >"$dir/etc/resolv.conf"
    echo "deb $MIRROR $SUITE main" >"$dir/etc/apt/sources.list"
    tar -C "$dir" --numeric-owner -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$dir"
    echo "base_images.sh: $name rootfs in $((SECONDS - start)) s ($(du -h "$tarball" | cut -f1))" >&2
  fi
  echo "$tarball"
}

# import TARBALL TAG [--change …]: docker import of a tarball.
import() {
  local tarball="$1" tag="$2"
  shift 2
  echo "base_images.sh: docker import $tag" >&2
  "$DOCKER" import "$@" "$tarball" "$tag" >/dev/null
}

runtime="whisper-test/runtime-base:$SUITE-r$ROOTFS.$IMAGE"
if ! have_image "$runtime"; then
  import "$(rootfs_tarball "runtime-$SUITE-r$ROOTFS" "")" "$runtime" \
    --change "$PATH_ENV" --change 'CMD ["bash"]'
fi

# unpack TARBALL: a scratch copy of a rootfs with this machine's CA bundle; prints its path.
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
ca="$(sha256sum "$CA_BUNDLE" | cut -c1-8)"
unpack() {
  local dir
  dir="$(mktemp -d "$CACHE/unpack.XXXXXX")"
  tar -C "$dir" -xf "$1"
  mkdir -p "$dir/etc/ssl/certs"
  cp "$CA_BUNDLE" "$dir/etc/ssl/certs/ca-certificates.crt"
  echo "$dir"
}

# import_dir DIR TAG [--change …]: imports a scratch rootfs, then removes it.
import_dir() {
  local dir="$1" tag="$2"
  shift 2
  tar -C "$dir" --numeric-owner -cf "$dir.tar" .
  rm -rf "$dir"
  import "$dir.tar" "$tag" "$@"
  rm -f "$dir.tar"
}

python="whisper-test/python-base:$SUITE-ca.$ca-r$ROOTFS.$IMAGE"
if ! have_image "$python"; then
  dir="$(unpack "$(rootfs_tarball "python-$SUITE-r$ROOTFS" "python3,python3-venv")")"
  import_dir "$dir" "$python" \
    --change "$PATH_ENV" --change "ENV PIP_CERT=$CA_BUNDLE" \
    --change 'CMD ["python3"]'
fi

# The builder's toolchain is this machine's (Debian's rustc is too old for edition 2024 /
# rust-version 1.94).
sysroot="$(rustc --print sysroot)"
rust_version="$(rustc --version | cut -d' ' -f2)"
builder="whisper-test/builder-base:$SUITE-rust$rust_version-ca.$ca-r$ROOTFS.$IMAGE"
if ! have_image "$builder"; then
  dir="$(unpack "$(rootfs_tarball "builder-$SUITE-r$ROOTFS" "gcc,libc6-dev,ca-certificates")")"
  mkdir -p "$dir/usr/local/rust/bin" "$dir/usr/local/rust/lib/rustlib" "$dir/usr/local/cargo/bin"
  cp -a "$sysroot/bin/cargo" "$sysroot/bin/rustc" "$dir/usr/local/rust/bin/"
  cp -a "$sysroot"/lib/*.so* "$dir/usr/local/rust/lib/"
  cp -a "$sysroot/lib/rustlib/x86_64-unknown-linux-gnu" "$dir/usr/local/rust/lib/rustlib/"
  "$dir/usr/local/rust/bin/rustc" --version >/dev/null # the copy runs (its libraries are found)
  import_dir "$dir" "$builder" \
    --change 'ENV RUSTUP_HOME=/usr/local/rustup' \
    --change 'ENV CARGO_HOME=/usr/local/cargo' \
    --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]'
fi

echo "BUILDER_IMAGE=$builder"
echo "RUNTIME_IMAGE=$runtime"
echo "PYTHON_IMAGE=$python"
