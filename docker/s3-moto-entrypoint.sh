#!/bin/sh
# moto's S3 server on port 9000. The minio service's arguments (`server /data
# --console-address :9001`) are MinIO's and are ignored; moto has no console.
exec moto_server -H 0.0.0.0 -p 9000
