#!/usr/bin/env bash
# Build the team stack's PostgreSQL and S3 images locally, for machines that reach Debian's
# mirror and PyPI but no container registry (docs/deploy.md, "No registry"):
#
#   tests/standins/local-images.sh [BASE_IMAGE]   # default local/python:3.11-slim
#   (offline-base.sh builds it)
#   then in .env: POSTGRES_IMAGE=local/postgres:15-bookworm  MINIO_IMAGE=local/s3-moto:5.2.5
set -euo pipefail

base="${1:-local/python:3.11-slim}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
docker build -q -t local/postgres:15-bookworm --build-arg BASE_IMAGE="$base" \
  -f "$root/tests/standins/postgres-debian.Dockerfile" "$root" >/dev/null
docker build -q -t local/s3-moto:5.2.5 --build-arg BASE_IMAGE="$base" \
  -f "$root/tests/standins/s3-moto.Dockerfile" "$root" >/dev/null
echo "local-images: built local/postgres:15-bookworm and local/s3-moto:5.2.5 on $base"
