#!/bin/sh
# moto's S3 server on port 9000. The minio service's arguments (`server /data
# --console-address :9001`) are MinIO's and are ignored; moto has no console. Like MinIO, it
# takes the root key from MINIO_ROOT_USER and MINIO_ROOT_PASSWORD[_FILE], and then refuses
# every request not signed with it.
#
# moto keeps objects in memory. Its recorder (MOTO_ENABLE_RECORDING) appends every request
# it answers to a file on the /data volume, and at start the file is replayed into the fresh
# server, so buckets and objects survive `docker compose down` / `up` as MinIO's do. The
# healthcheck (`mc ready local`) passes only once the replay is done.
set -eu

recording=/data/moto-recording.jsonl
ready=/tmp/s3-moto.ready
export MOTO_ENABLE_RECORDING=true MOTO_RECORDER_FILEPATH="$recording"
mkdir -p /data
rm -f "$ready"
# tests/standins/s3-moto-server.py: moto's server, which with MINIO_ROOT_USER / MINIO_ROOT_PASSWORD_FILE
# set accepts only requests signed with that key, keeps its own API to this container and
# writes each recorded request whole.
python /usr/local/lib/s3-moto-server.py 0.0.0.0 9000 &
server=$!
trap 'kill -TERM "$server"' TERM INT
python - "$recording" <<'PY'
import json, socket, sys, time, urllib.request as u
from pathlib import Path

api = "http://127.0.0.1:9000/moto-api/"
deadline = time.monotonic() + 60
while True:
    try:
        socket.create_connection(("127.0.0.1", 9000), timeout=2).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("s3-moto: the server did not answer within 60 s")
        time.sleep(0.2)
recording = Path(sys.argv[1])
if recording.exists() and recording.stat().st_size:
    # A container killed mid-write leaves a torn last line: replay the whole lines only.
    lines = recording.read_bytes().splitlines(keepends=True)
    whole = []
    for line in lines:
        try:
            json.loads(line)
            whole.append(line if line.endswith(b"\n") else line + b"\n")
        except ValueError:
            print(f"s3-moto: dropped a torn request line of {len(line)} bytes", flush=True)
    if len(whole) != len(lines):
        cleaned = recording.with_suffix(".tmp")
        cleaned.write_bytes(b"".join(whole))
        cleaned.replace(recording)
    # Not recorded again: the recorder pauses while it replays.
    u.urlopen(u.Request(api + "recorder/replay-recording", method="POST"), timeout=600)
    print(f"s3-moto: replayed {recording}", flush=True)
PY
touch "$ready"
# `wait` returns early when a signal arrives; the server is then still shutting down.
while kill -0 "$server" 2>/dev/null; do
  wait "$server" || true
done
