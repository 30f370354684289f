# A stand-in for the pinned MinIO image where no registry can be reached: moto's standalone
# S3 server, installed from PyPI on the project's base. It answers the S3 API on port 9000
# to requests signed with the key in MINIO_ROOT_USER / MINIO_ROOT_PASSWORD[_FILE] only
# (tests/standins/s3-moto-server.py), and
# brings an `mc` that understands only `mc ready local`, the minio service's healthcheck.
# moto keeps objects in memory; the entrypoint records every request on the /data volume and
# replays the recording at start, so objects survive a restart as MinIO's do.
#
#   tests/standins/local-images.sh        # builds it as local/s3-moto:5.2.5
#   MINIO_IMAGE=local/s3-moto:5.2.5 in .env
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ARG MOTO_VERSION=5.2.5
RUN pip install --no-cache-dir "moto[server]==${MOTO_VERSION}"
COPY tests/standins/s3-moto-entrypoint.sh /usr/local/bin/s3-moto
COPY tests/standins/s3-moto-server.py /usr/local/lib/s3-moto-server.py
RUN printf '%s\n' '#!/bin/sh' \
      '# `mc ready local` for the healthcheck: the recording is replayed and the S3 port answers.' \
      'test -e /tmp/s3-moto.ready || exit 1' \
      '# A TCP connection, not a request: the recorder would keep every one.' \
      'exec python -c "import socket; socket.create_connection((\"127.0.0.1\", 9000), timeout=4)"' \
      >/usr/local/bin/mc \
 && chmod 755 /usr/local/bin/mc /usr/local/bin/s3-moto
EXPOSE 9000
ENTRYPOINT ["s3-moto"]
