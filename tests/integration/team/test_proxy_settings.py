"""The front door's settings are checked before nginx starts (docker/proxy-entrypoint.sh):
a bad value stops the container with one line naming the setting (exit 78, EX_CONFIG).

The script is plain sh, run here on the host; the proxy itself is tested in containers
(tests/integration/team/test_team_hardening.py).
"""

from __future__ import annotations

import pytest

from mlpipeline.tool_env import tool_env
from tests.support.repository import REPO
from tests.support.tools import run

pytestmark = pytest.mark.integration

ENTRYPOINT = REPO / "docker" / "proxy-entrypoint.sh"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PROXY_LOGIN_FAILURES", "0"),
        ("PROXY_LOGIN_FAILURES", "five"),
        ("PROXY_LOGIN_WINDOW", "10m"),
        ("PROXY_LOGIN_BAN", "-1"),
        ("PROXY_RATE", "10r/s; include /etc/passwd"),
        ("PROXY_DELAY", "30; include /etc/passwd"),
        ("PROXY_DELAY", "-1"),
        ("PROXY_USER_RATE", "100r/s; include /etc/passwd"),
        ("PROXY_USER_BURST", "0"),
        ("PROXY_USER_BURST", "2x"),
        ("PROXY_SERVER_NAME", "example.org|evil"),
        ("PROXY_PUBLIC_PORT", "443; return 200"),
        ("PROXY_PUBLIC_PORT", "0"),
        ("PROXY_MAX_BODY_SIZE", "1g"),
        ("PROXY_MAX_BODY_SIZE", "m1"),
        ("PROXY_MAX_ARTIFACT_SIZE", "1mm"),
        ("PROXY_MAX_ERROR_BYTES", "1k"),
    ],
)
def test_a_bad_setting_is_named_and_nginx_never_starts(name: str, value: str) -> None:
    proc = run(["sh", ENTRYPOINT], cwd=REPO, env=tool_env({name: value}), check=False)
    assert proc.returncode == 78, proc
    assert proc.stderr.startswith(f"proxy-entrypoint: {name} "), proc.stderr
    assert value in proc.stderr
    assert proc.stdout == ""


def test_good_settings_pass_to_the_certificate_check() -> None:
    """With every setting valid (the defaults) the next check is the TLS files'."""
    proc = run(["sh", ENTRYPOINT], cwd=REPO, env=tool_env(), check=False)
    assert proc.returncode == 78, proc
    assert "/run/secrets/tls_certificate is missing" in proc.stderr, proc.stderr
