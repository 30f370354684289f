"""Is the tracking server there, and does it let this account in? One cheap probe.

Not MLflow's client (a second of import, and minutes of retries) but the library it speaks
through, requests, given what MLflow's client would be given: MLFLOW_TRACKING_USERNAME and
_PASSWORD as `auth=`, MLFLOW_TRACKING_SERVER_CERT_PATH or MLFLOW_TRACKING_INSECURE_TLS as
`verify=`, MLFLOW_TRACKING_CLIENT_CERT_PATH as `cert=` (MLflow's `http_request` does the same).
So a server this probe passes is one the client reaches. requests is imported only for a
server's URI.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Any

from mlpipeline.domain.errors import AuthenticationError, TrackingError
from mlpipeline.tracking.failures import chain

if TYPE_CHECKING:
    import requests

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
    import requests
    import urllib3

    base = uri.rstrip("/")
    # Per request, as MLflow gives them: a Session's `verify` loses to REQUESTS_CA_BUNDLE.
    auth, verify = _credentials(), _verify()
    cert = os.environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH") or None
    with requests.Session() as session, warnings.catch_warnings():
        # The user chose MLFLOW_TRACKING_INSECURE_TLS: no warning per probe for it.
        warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        for path, wait in (("/health", timeout), (API_PROBE_PATH, API_PROBE_TIMEOUT_S)):
            try:
                answer = session.get(
                    base + path, timeout=max(wait, timeout), auth=auth, verify=verify, cert=cert
                )
            except requests.RequestException as exc:
                raise TrackingError(_unreachable(uri, _reason(exc))) from None
            _judge(uri, answer)


def _judge(uri: str, answer: requests.Response) -> None:
    """Raise for an answer that is not a success: a login refused, an address turned away,
    anything else as a server that does not serve."""
    status = answer.status_code
    if status in (401, 403):
        raise AuthenticationError(_authentication_failure(uri, status), status)
    if status == 429:
        raise AuthenticationError(_turned_away(uri, answer), status)
    if status >= 400:
        raise TrackingError(_unreachable(uri, f"HTTP {status} {answer.reason}"))


def _credentials() -> tuple[str, str] | None:
    username, password = os.environ.get(USERNAME_ENV), os.environ.get(PASSWORD_ENV)
    return (username, password) if username and password else None


def _verify() -> bool | str:
    """What MLflow's client trusts: the CA of MLFLOW_TRACKING_SERVER_CERT_PATH (a private
    CA, docs/deploy.md), any certificate with MLFLOW_TRACKING_INSECURE_TLS=true, else the
    CAs requests trusts."""
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        return False
    return os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True


def _reason(exc: BaseException) -> str:
    """The short cause under requests' wrapping: the TLS error, the refused connection, or
    that the server did not answer in time."""
    import ssl

    import requests

    wrapped = list(chain(exc))
    for error in wrapped:
        if isinstance(error, ssl.SSLError):
            return str(error)
    if isinstance(exc, requests.Timeout):
        return "no answer in time"
    for error in wrapped:
        if isinstance(error, OSError) and error.errno is not None and error.strerror:
            return f"[Errno {error.errno}] {error.strerror}"
    return " ".join(str(exc).split())[:300]


def _unreachable(uri: str, reason: object) -> str:
    return (
        f"MLflow tracking server {uri} is unreachable ({reason}). Start it, or unset "
        f"{TRACKING_URI_ENV} to use the embedded SQLite store."
    )


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


def _turned_away(uri: str, answer: Any) -> str:
    """What to do about a 429: the team stack's front door answers it to an address with
    too many failed logins (or requests), with how long to wait (docs/deploy.md)."""
    said = answer.text[:200].strip().splitlines()
    wait = answer.headers.get("Retry-After")
    return (
        f"MLflow tracking server {uri} turned this address away for now (HTTP 429: "
        f"{said[0] if said else answer.reason})"
        + (f"; try again in {wait} s" if wait else "")
        + f". If logins failed before, check {USERNAME_ENV} and {PASSWORD_ENV} first."
    )
