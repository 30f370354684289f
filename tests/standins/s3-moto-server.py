"""moto's S3 server as the team's object store stand-in (tests/standins/s3-moto-entrypoint.sh).

Three changes to `moto_server`:

- Keys: with MINIO_ROOT_USER and MINIO_ROOT_PASSWORD (or MINIO_ROOT_PASSWORD_FILE) set, that
  key pair is the only one accepted: a request unsigned, or signed with any other key,
  answers 403 (moto's IAM checks, on from the first request: INITIAL_NO_AUTH_ACTION_COUNT=0).
  Without them moto accepts anything, as it does by default.
- moto's own API (/moto-api/: reset, recorder, auth switch) answers only 127.0.0.1, this
  container's own processes; from anywhere else it is 403. So does an unsigned request when
  keys are required.
- One lock around the recorder, so two concurrent uploads never interleave their lines.

    python s3-moto-server.py HOST PORT
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

ROOT_USER = "root"
ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def root_key() -> tuple[str, str] | None:
    """The configured key pair, or None when no key is configured."""
    key_id = os.environ.get("MINIO_ROOT_USER", "")
    secret = os.environ.get("MINIO_ROOT_PASSWORD", "")
    secret_file = os.environ.get("MINIO_ROOT_PASSWORD_FILE", "")
    if not secret and secret_file:
        # MinIO's image reads a bare name from /run/secrets, as compose's minio service says.
        path = Path(secret_file if "/" in secret_file else f"/run/secrets/{secret_file}")
        secret = path.read_text().rstrip("\n")
    if not key_id and not secret:
        return None
    if not key_id or not secret:
        sys.exit("s3-moto: set both MINIO_ROOT_USER and MINIO_ROOT_PASSWORD[_FILE], or neither")
    return key_id, secret


def require_key(key_id: str, secret: str) -> None:
    """Make KEY_ID/SECRET an IAM user's key that may do anything, and check every request."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.iam.models import iam_backends

    iam = iam_backends[DEFAULT_ACCOUNT_ID]["aws"]
    iam.create_user(region_name="us-east-1", user_name=ROOT_USER)
    iam.put_user_policy(ROOT_USER, "all", json.dumps(ALLOW_ALL))
    access_key = iam.create_access_key(ROOT_USER)
    # moto makes random keys; the stand-in must accept the one the stack was given.
    access_key.access_key_id, access_key.secret_access_key = key_id, secret


ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>%s</Message></Error>\n"
)


def guard(app, key: tuple[str, str] | None):
    """WSGI middleware: /moto-api/ only for this container's own processes. With a key, a
    request signed in its headers goes on to moto's check; a presigned URL (query
    signature, which moto's check does not read) is verified here; anything else is 403."""

    def guarded(environ, start_response):
        if environ.get("PATH_INFO", "").startswith("/moto-api/"):
            if environ.get("REMOTE_ADDR") not in ("127.0.0.1", "::1"):
                return deny(start_response, b"moto's API answers only inside its container")
        elif key and not environ.get("HTTP_AUTHORIZATION"):
            if "X-Amz-Signature=" not in environ.get("QUERY_STRING", ""):
                return deny(start_response, b"unsigned request")
            region = presigned_by(key, environ)
            if region is None:
                return deny(start_response, b"presigned URL not signed with this key or expired")
            # moto's check reads only the header form: the request goes on signed that way,
            # with the same key, as MinIO lets a valid presigned URL through.
            return app(header_signed(key, region, environ), start_response)
        return app(environ, start_response)

    return guarded


def header_signed(key: tuple[str, str], region: str, environ) -> dict:
    """ENVIRON without the query signature, signed with KEY in its headers instead."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    query = unsigned_query(environ)
    host = environ.get("HTTP_HOST", "")
    path = (environ.get("RAW_URI") or environ.get("REQUEST_URI") or "").split("?", 1)[0]
    url = f"http://{host}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=environ["REQUEST_METHOD"], url=url, headers={"Host": host})
    S3SigV4Auth(Credentials(*key), "s3", region).add_auth(request)
    signed = {**environ, "QUERY_STRING": query}
    for name, value in request.headers.items():
        signed["HTTP_" + name.upper().replace("-", "_")] = value
    for name in ("RAW_URI", "REQUEST_URI"):
        if name in signed:
            signed[name] = url.split(host, 1)[1]
    return signed


def unsigned_query(environ) -> str:
    from urllib.parse import parse_qsl, urlencode

    pairs = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    return urlencode([(k, v) for k, v in pairs if not k.startswith("X-Amz-")])


def presigned_by(key: tuple[str, str], environ) -> str | None:
    """The region of the request's query signature (AWS SigV4, UNSIGNED-PAYLOAD) if it is
    KEY's and has not expired, else None."""
    import hashlib
    import hmac
    from datetime import UTC, datetime, timedelta
    from urllib.parse import parse_qsl, quote

    query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    try:
        key_id, day, region, service, _ = query["X-Amz-Credential"].split("/")
        stamp = query["X-Amz-Date"]
        signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        expires = timedelta(seconds=int(query["X-Amz-Expires"]))
        signed_headers = query["X-Amz-SignedHeaders"].split(";")
        signature = query["X-Amz-Signature"]
    except (KeyError, ValueError):
        return None
    if key_id != key[0] or datetime.now(UTC) > signed_at + expires:
        return None
    pairs = sorted(
        (quote(k, safe="-_.~"), quote(v, safe="-_.~"))
        for k, v in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        if k != "X-Amz-Signature"
    )
    headers = "".join(
        f"{name}:{environ.get('HTTP_' + name.upper().replace('-', '_'), '').strip()}\n"
        for name in signed_headers
    )
    path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ["PATH_INFO"]
    canonical = "\n".join(
        [
            environ["REQUEST_METHOD"],
            path.split("?", 1)[0],
            "&".join(f"{k}={v}" for k, v in pairs),
            headers,
            ";".join(signed_headers),
            "UNSIGNED-PAYLOAD",
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    signing = ("AWS4" + key[1]).encode()
    for part in (day, region, service, "aws4_request"):
        signing = hmac.new(signing, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(signing, to_sign.encode(), hashlib.sha256).hexdigest()
    return region if hmac.compare_digest(expected, signature) else None


def deny(start_response, message: bytes) -> list[bytes]:
    start_response("403 Forbidden", [("Content-Type", "application/xml")])
    return [ACCESS_DENIED % message]


def whole_recorded_lines() -> None:
    from moto.moto_api._internal.recorder.models import Recorder

    lock = threading.Lock()
    record = Recorder._record_request

    def record_whole(self, *args, **kwargs):
        with lock:
            return record(self, *args, **kwargs)

    Recorder._record_request = record_whole


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    key = root_key()
    if key:
        # moto's switch, read when it is imported: IAM checks from the first request on.
        os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import run_simple

    whole_recorded_lines()
    if key:
        require_key(*key)
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, guard(app, key), threaded=True)


if __name__ == "__main__":
    main()
