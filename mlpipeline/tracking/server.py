"""Is the tracking server there, and does it let this account in? One cheap probe.

Plain urllib, not MLflow's client (a second of import, and minutes of retries): it sends
what MLflow's client would send for the same settings (MLFLOW_TRACKING_USERNAME/_PASSWORD
as basic auth; MLFLOW_TRACKING_SERVER_CERT_PATH or MLFLOW_TRACKING_INSECURE_TLS for TLS),
so a server this probe passes is one the client reaches. urllib.request and ssl (~0.05 s)
are imported only for a server's URI.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from mlpipeline.domain.errors import AuthenticationError, TrackingError

if TYPE_CHECKING:
    import ssl
    import urllib.error

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
HEALTH_TIMEOUT_S = 5.0
# The credentials MLflow's client sends (HTTP basic auth).
USERNAME_ENV = "MLFLOW_TRACKING_USERNAME"
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"
# A cheap, read-only API call: a server can answer /health while its API hangs (a stuck
# worker or database), and on MLflow's basic-auth app /health needs no login, the API does.
API_PROBE_PATH = "/api/2.0/mlflow/experiments/search?max_results=1"
# A server's first API call opens its store (seconds on a loaded machine); /health (5 s) plus
# this stays within the 30 s in which an unresponsive server must fail a stage.
API_PROBE_TIMEOUT_S = 20.0


def check_reachable(uri: str, timeout: float = HEALTH_TIMEOUT_S) -> None:
    """Fail fast, naming the URI, when an HTTP tracking server does not answer or let us in."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    base = uri.rstrip("/")
    headers = _basic_auth_header()
    try:
        for path, wait in (("/health", timeout), (API_PROBE_PATH, API_PROBE_TIMEOUT_S)):
            request = urllib.request.Request(base + path, headers=headers)
            with urllib.request.urlopen(
                request, timeout=max(wait, timeout), context=_tls_context()
            ) as response:
                response.read()
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise AuthenticationError(_authentication_failure(uri, exc.code), exc.code) from None
        if exc.code == 429:
            raise AuthenticationError(_turned_away(uri, exc), exc.code) from None
        raise TrackingError(_unreachable(uri, f"HTTP {exc.code} {exc.reason}")) from None
    except (urllib.error.URLError, OSError) as exc:
        raise TrackingError(_unreachable(uri, getattr(exc, "reason", exc))) from None


def _tls_context() -> ssl.SSLContext | None:
    """What MLflow's client trusts: the CA of MLFLOW_TRACKING_SERVER_CERT_PATH (a private
    CA, docs/deploy.md) or, with MLFLOW_TRACKING_INSECURE_TLS=true, any certificate; else
    the system's CAs (None)."""
    import ssl

    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    cert_path = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH")
    return ssl.create_default_context(cafile=cert_path) if cert_path else None


def _unreachable(uri: str, reason: object) -> str:
    return (
        f"MLflow tracking server {uri} is unreachable ({reason}). Start it, or unset "
        f"{TRACKING_URI_ENV} to use the embedded SQLite store."
    )


def _basic_auth_header() -> dict[str, str]:
    """The Authorization header MLflow's client sends for MLFLOW_TRACKING_USERNAME/_PASSWORD."""
    username, password = os.environ.get(USERNAME_ENV), os.environ.get(PASSWORD_ENV)
    if not (username and password):
        return {}
    import base64

    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


def _authentication_failure(uri: str, status: int) -> str:
    """What to do about a 401/403; names the account, never the password."""
    username = os.environ.get(USERNAME_ENV)
    if not (username and os.environ.get(PASSWORD_ENV)):
        return (
            f"MLflow tracking server {uri} requires authentication (HTTP {status}): set "
            f"{USERNAME_ENV} and {PASSWORD_ENV} to your account on it."
        )
    return (
        f"MLflow tracking server {uri} refused the authentication of user {username!r} "
        f"(HTTP {status}): check {USERNAME_ENV} and {PASSWORD_ENV}."
    )


def _turned_away(uri: str, answer: urllib.error.HTTPError) -> str:
    """What to do about a 429: the team stack's front door answers it to an address with
    too many failed logins (or requests), with how long to wait (docs/deploy.md)."""
    said = answer.read(200).decode("utf-8", "replace").strip().splitlines()
    wait = answer.headers.get("Retry-After")
    return (
        f"MLflow tracking server {uri} turned this address away for now (HTTP 429: "
        f"{said[0] if said else answer.reason})"
        + (f"; try again in {wait} s" if wait else "")
        + f". If logins failed before, check {USERNAME_ENV} and {PASSWORD_ENV} first."
    )
