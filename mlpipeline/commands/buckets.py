"""Create the team's S3 buckets through the S3 API (any S3 server: MinIO, moto, AWS, Ceph).

    mlpipeline team buckets mlflow-artifacts dvc-remote

The compose `buckets` job runs it from the project's own image once the object store is up.
The server is MLFLOW_S3_ENDPOINT_URL (else AWS_ENDPOINT_URL, else AWS itself); the keys are
boto3's usual AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, read from the environment only, so
no secret is on a command line. A bucket that exists is left as it is: running it again
changes nothing.
"""

from __future__ import annotations

import logging
import os
import time

import click

from mlpipeline.commands.console import command
from mlpipeline.domain.errors import PipelineError

log = logging.getLogger("mlpipeline.buckets")

# How long to wait for an object store that is still starting (compose starts this job once
# the store's healthcheck passes, but a store without one is reached right away).
READY_TIMEOUT_S = 60.0


def endpoint_url() -> str | None:
    return os.environ.get("MLFLOW_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")


def ensure_buckets(
    names: list[str], endpoint: str | None, timeout: float = READY_TIMEOUT_S
) -> list[str]:
    """Create each bucket that does not exist yet; the names of those created."""
    import boto3
    import botocore.exceptions

    where = f"S3 server {endpoint or 'AWS'}"
    if not (os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")):
        raise PipelineError(f"{where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    client = boto3.client("s3", endpoint_url=endpoint)
    deadline = time.monotonic() + timeout
    while True:
        try:
            existing = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
            break
        except botocore.exceptions.EndpointConnectionError as exc:
            if time.monotonic() > deadline:
                raise PipelineError(f"{where} is unreachable ({exc})") from None
            time.sleep(1)
        except botocore.exceptions.ClientError as exc:
            raise PipelineError(f"{where}: listing buckets failed: {_reason(exc)}") from None
    created = []
    for name in names:
        if name in existing:
            continue
        try:
            client.create_bucket(Bucket=name)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "BucketAlreadyOwnedByYou":
                continue  # made meanwhile by another run of this job
            raise PipelineError(f"{where}: cannot create bucket {name}: {_reason(exc)}") from None
        created.append(name)
    return created


def _reason(exc) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', '?')}: {error.get('Message', '')}".strip()


@command("buckets", help="Create the named S3 buckets unless they exist.")
@click.argument("bucket", nargs=-1, required=True)
def buckets(bucket: tuple[str, ...]) -> None:
    endpoint = endpoint_url()
    created = ensure_buckets(list(bucket), endpoint)
    kept = [name for name in bucket if name not in created]
    log.info(
        "S3 server %s: created %s; already there: %s",
        endpoint or "AWS",
        ", ".join(created) or "none",
        ", ".join(kept) or "none",
    )
