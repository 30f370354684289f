#!/usr/bin/env bash
# Make Docker usable for `make test-docker` on a Debian machine, offline from any
# container registry. Idempotent: each step is skipped when its result is already there.
#   1. Docker Engine and the compose v1 tool from Debian (docker.io, docker-compose),
#      and debootstrap for the offline base image, when missing (needs root), through
#      .ci/apt-install.sh, which waits for another apt/dpkg to release its locks.
#   2. dockerd, when no engine answers.
#   3. The base image: python:3.11-slim when it is there or can be pulled, else the local
#      stand-in from tests/standins/offline-base.sh (local/python:3.11-slim).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ((${#missing[@]})); then
  if [[ "$(id -u)" != 0 ]]; then
    echo "ci-setup: installing ${missing[*]} needs root" >&2
    exit 1
  fi
  echo "ci-setup: installing ${missing[*]}"
  .ci/apt-install.sh "${missing[@]}"
fi

if ! docker info >/dev/null 2>&1; then
  log="${DOCKERD_LOG:-/var/log/dockerd.log}"
  echo "ci-setup: starting dockerd (log: $log)"
  nohup dockerd >"$log" 2>&1 </dev/null &
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { echo "ci-setup: dockerd did not start" >&2; tail -n 30 "$log" >&2; exit 1; }
fi

if docker image inspect python:3.11-slim >/dev/null 2>&1; then
  echo "ci-setup: base image python:3.11-slim is present"
elif timeout 120 docker pull -q python:3.11-slim >/dev/null 2>&1; then
  echo "ci-setup: pulled python:3.11-slim"
else
  echo "ci-setup: python:3.11-slim cannot be pulled; using the offline stand-in"
  tests/standins/offline-base.sh local/python:3.11-slim
fi
