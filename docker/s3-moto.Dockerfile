# A stand-in for the pinned MinIO image where no registry can be reached: moto's standalone
# S3 server, installed from PyPI on the project's base. It answers the S3 API on port 9000
# with the keys in MINIO_ROOT_USER / MINIO_ROOT_PASSWORD accepted (moto accepts any), and
# brings an `mc` that understands only `mc ready local`, the minio service's healthcheck.
# moto keeps objects in memory: they do not survive a restart of the container (MinIO's do).
#
#   docker/local-images.sh        # builds it as local/s3-moto:5.2.5
#   MINIO_IMAGE=local/s3-moto:5.2.5 in .env
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ARG MOTO_VERSION=5.2.5
RUN pip install --no-cache-dir "moto[server]==${MOTO_VERSION}"
COPY docker/s3-moto-entrypoint.sh /usr/local/bin/s3-moto
RUN printf '%s\n' '#!/bin/sh' \
      '# `mc ready local` for the healthcheck: the S3 port answers.' \
      'exec python -c "import urllib.request as u; u.urlopen(\"http://127.0.0.1:9000/moto-api/\", timeout=4)"' \
      >/usr/local/bin/mc \
 && chmod 755 /usr/local/bin/mc /usr/local/bin/s3-moto
EXPOSE 9000
ENTRYPOINT ["s3-moto"]
