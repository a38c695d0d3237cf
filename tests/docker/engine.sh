#!/usr/bin/env bash
# tests/docker/engine.sh — owns the Docker engine the Docker test (tests/docker.rs) runs on.
#
# Makes sure, idempotently, that this machine has what the test needs and that a daemon answers:
#   * Debian's docker.io (dockerd 20.10 with its built-in BuildKit, and its own 20.10 client,
#     which can drive that BuildKit without a buildx plugin), debootstrap (the base images are
#     made from Debian's packages: no image can be pulled here) and docker-compose 1.29 (the
#     only Compose Debian bookworm packages; it validates and runs compose.yaml);
#   * a running dockerd: when none answers, starts
#       dockerd --iptables=false --bridge=none --storage-driver=vfs
#     in the background (log: /var/log/whisper-dockerd.log). Containers then use --network host.
# Run by `./manage test` before the suite and by the test itself (so `cargo test --test docker`
# works alone). Needs root to install or start anything; exits non-zero, saying why, when the
# engine cannot be made to work — the test then fails, it never skips.
set -euo pipefail

DOCKER=/usr/bin/docker
need=()
[ -x /usr/sbin/dockerd ] && [ -x "$DOCKER" ] || need+=(docker.io)
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
command -v docker-compose >/dev/null || need+=(docker-compose)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "engine.sh: the Docker test needs ${need[*]}; install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  echo "engine.sh: installing ${need[*]} (apt-get install -y)" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"; } >&2 || {
    echo "engine.sh: installing ${need[*]} failed; run: apt-get update && apt-get install -y ${need[*]}" >&2
    exit 1
  }
fi

if "$DOCKER" info >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "engine.sh: no Docker daemon answers and starting one needs root:" >&2
  echo "  sudo dockerd --iptables=false --bridge=none --storage-driver=vfs &" >&2
  exit 1
fi
log=/var/log/whisper-dockerd.log
if ! pgrep -x dockerd >/dev/null; then
  echo "engine.sh: starting dockerd --iptables=false --bridge=none --storage-driver=vfs (log: $log)" >&2
  # setsid + nohup: the daemon outlives the test process and its process group.
  setsid nohup /usr/sbin/dockerd --iptables=false --bridge=none --storage-driver=vfs \
    >>"$log" 2>&1 </dev/null &
fi
for _ in $(seq 1 60); do
  "$DOCKER" info >/dev/null 2>&1 && exit 0
  sleep 1
done
echo "engine.sh: dockerd did not answer within 60 s; the end of $log:" >&2
tail -n 30 "$log" >&2 || true
exit 1
