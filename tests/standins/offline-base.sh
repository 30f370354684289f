#!/usr/bin/env bash
# Build a local stand-in for `python:3.11-slim` when no container registry can be reached
# (air-gapped or proxied CI). Debian bookworm's python3 is 3.11, like the official image.
#
#   tests/standins/offline-base.sh [TAG]       # default TAG: local/python:3.11-slim
#   docker compose build --build-arg BASE_IMAGE=local/python:3.11-slim
#   (or set BASE_IMAGE=local/python:3.11-slim in .env)
#
# Steps: debootstrap a minimal bookworm root file system (~40 s, from the Debian mirror
# in MIRROR), `docker import` it, then a small Dockerfile that puts `python` and `pip` on
# PATH and copies in this host's CA bundle, so pip and uv inside later builds trust the
# same TLS setup as the host (e.g. an intercepting proxy's CA). Needs root, debootstrap
# and a running Docker engine. Idempotent: an existing TAG is kept unless FORCE=1.
set -euo pipefail

TAG="${1:-local/python:3.11-slim}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
SUITE="${SUITE:-bookworm}"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

if [[ "${FORCE:-0}" != 1 ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "offline-base: $TAG already exists (FORCE=1 rebuilds it)"
  exit 0
fi
for tool in debootstrap docker; do
  command -v "$tool" >/dev/null || { echo "offline-base: $tool is required" >&2; exit 1; }
done
[[ -r "$CA_BUNDLE" ]] || { echo "offline-base: no CA bundle at $CA_BUNDLE" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"

echo "offline-base: debootstrap $SUITE from $MIRROR"
debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates \
  "$SUITE" "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
# Keep the image small, as the slim image does.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*

raw="${TAG%%:*}-rootfs:${SUITE}"
tar -C "$rootfs" -c . | docker import - "$raw" >/dev/null

mkdir "$work/ctx"
cp "$CA_BUNDLE" "$work/ctx/ca-certificates.crt"
cat >"$work/ctx/Dockerfile" <<EOF
FROM $raw
COPY ca-certificates.crt /usr/local/share/ca-bundle/ca-certificates.crt
# python and pip as the official image has them; Debian's own pip refuses system-wide
# installs (PEP 668), which the official image does not, so lift that too.
RUN ln -sf /usr/bin/python3 /usr/local/bin/python \\
 && ln -sf /usr/bin/pip3 /usr/local/bin/pip \\
 && rm -f /usr/lib/python3*/EXTERNALLY-MANAGED
ENV LANG=C.UTF-8 \\
    PIP_CERT=/usr/local/share/ca-bundle/ca-certificates.crt \\
    SSL_CERT_FILE=/usr/local/share/ca-bundle/ca-certificates.crt \\
    REQUESTS_CA_BUNDLE=/usr/local/share/ca-bundle/ca-certificates.crt \\
    UV_NATIVE_TLS=1
CMD ["python3"]
EOF
docker build -q -t "$TAG" "$work/ctx" >/dev/null
docker run --rm "$TAG" python --version
echo "offline-base: built $TAG"
