"""HTTP calls of the tests, answered whatever the status."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


def http(url: str, payload: object | None = None, timeout: float = 10) -> tuple[int, bytes]:
    """GET (or POST JSON when payload is given); the status and body, also for 4xx/5xx."""
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
