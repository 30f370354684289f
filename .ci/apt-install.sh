#!/usr/bin/env bash
# apt-get update + install that waits for another apt/dpkg process (unattended-upgrades, a
# second job on the machine) to release its locks instead of failing at once. Needs root.
#
#   .ci/apt-install.sh PACKAGE...        APT_LOCK_TIMEOUT: seconds to wait (default 600)
#
# `install` waits through apt's own DPkg::Lock::Timeout; `update` does not honour that
# option for its lists lock, so it is retried until the same deadline.
set -euo pipefail

timeout_s="${APT_LOCK_TIMEOUT:-600}"
apt_get=(apt-get -qq -o "DPkg::Lock::Timeout=${timeout_s}")
deadline=$((SECONDS + timeout_s))
until "${apt_get[@]}" update; do
  if ((SECONDS >= deadline)); then
    echo "apt-install: apt-get update still failing after ${timeout_s} s" >&2
    exit 1
  fi
  echo "apt-install: apt-get update failed (another apt holding its lock?); retrying in 5 s" >&2
  sleep 5
done
DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y --no-install-recommends "$@" >/dev/null
