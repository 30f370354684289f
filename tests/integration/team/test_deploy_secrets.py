"""Every snippet of docs/deploy.md that handles a secret, run as written (bash, in a
temporary HOME and checkout): the files it makes are private (0600, or the documented
exceptions), no secret reaches any command's arguments, and the DVC remote one pushes to
and pulls from an S3 server that checks its key (tests/standins/s3-moto-server.py, the stand-in's
server). The MinIO admin snippet is not run: it needs MinIO's admin API (docs/deploy.md
says why)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlpipeline.tool_env import tool_env
from tests.support.repository import REPO
from tests.support.servers import free_port, serving
from tests.support.tools import run

pytestmark = pytest.mark.integration

DOC = REPO / "docs" / "deploy.md"
KEY_ID, SECRET = "dvc-alice", "-starts-with-a-dash-" + os.urandom(8).hex()
# Commands the snippets run, wrapped so that their arguments are logged.
WRAPPED = ("python3", "install", "mkdir", "dvc", "cp", "chmod", "sudo", "cat", "git")


def snippet(first_line: str) -> str:
    """The bash block of docs/deploy.md holding FIRST_LINE, from that line on."""
    for block in re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.DOTALL):
        if first_line in block:
            return block[block.index(first_line) :]
    raise AssertionError(f"docs/deploy.md has no bash block with {first_line!r}")


@pytest.fixture
def shell(tmp_path: Path):
    """Run bash SCRIPT with HOME in tmp_path and every command of WRAPPED logging its
    arguments to argv.log; returns the process and the log's text."""
    home, shims, log = tmp_path / "home", tmp_path / "shims", tmp_path / "argv.log"
    home.mkdir()
    shims.mkdir()
    env = tool_env({"HOME": str(home), "ARGV_LOG": str(log)})
    for name in WRAPPED:
        shim = shims / name
        # sudo: the test runs as root already, so it only runs the rest.
        target = '"$@"' if name == "sudo" else f'"$(PATH="$REAL_PATH" command -v {name})" "$@"'
        shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "{name} $*" >> "$ARGV_LOG"\nexec {target}\n')
        shim.chmod(0o755)
    env["REAL_PATH"] = env["PATH"]
    env["PATH"] = f"{shims}:{env['PATH']}"

    def bash(script: str, cwd: Path, stdin: str = "") -> tuple[subprocess.CompletedProcess, str]:
        proc = subprocess.run(
            ["bash", "-e", "-c", script],
            cwd=cwd,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return proc, log.read_text() if log.exists() else ""

    return bash, home


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_env_file_is_made_private(shell, tmp_path: Path) -> None:
    bash, _ = shell
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / ".env.example").write_text((REPO / ".env.example").read_text())
    script = snippet("install -m 600 .env.example .env").split("make up")[0]
    proc, _ = bash(script, checkout)
    assert proc.returncode == 0, proc.stderr
    assert mode(checkout / ".env") == 0o600
    # `make up` makes the folders the app container's bind mounts need before compose starts.
    dry_run = subprocess.run(["make", "-n", "up"], cwd=REPO, capture_output=True, text=True)
    assert "mkdir -p .dvc/cache .dvc/tmp" in dry_run.stdout, dry_run.stdout + dry_run.stderr


def test_the_secrets_folder_keeps_every_secret_off_command_lines(shell, tmp_path: Path) -> None:
    bash, home = shell
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("fullchain.pem", "privkey.pem"):
        (tmp_path / name).write_text(f"not a real {name}\n")
    script = (
        snippet("mkdir -m 700 ~/mlops-secrets")
        .replace("/path/to/checkout", str(checkout))
        .replace("/path/to/", f"{tmp_path}/")
    )
    proc, argv = bash(script, tmp_path)
    assert proc.returncode == 0, proc.stderr
    folder = home / "mlops-secrets"
    assert mode(folder) == 0o700
    files = sorted(p for p in folder.iterdir())
    assert len(files) == 9, files
    for path in files:
        if path.name == "tls_private_key":
            assert (mode(path), path.stat().st_uid) == (0o600, 33)
        else:
            assert mode(path) == 0o644, path
        secret = path.read_text().strip()
        assert secret and secret not in argv, path.name
    assert (checkout / ".env").read_text() == f"SECRETS_DIR={folder}\n"


@pytest.fixture
def keyed_s3(tmp_path: Path) -> Iterator[str]:
    """The S3 stand-in's server on a free port, accepting KEY_ID/SECRET only, with the
    `dvc-remote` bucket."""
    import boto3

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = tool_env({"MINIO_ROOT_USER": KEY_ID, "MINIO_ROOT_PASSWORD": SECRET})
    command = ["python", REPO / "tests" / "standins" / "s3-moto-server.py", "127.0.0.1", str(port)]
    with serving(command, f"{url}/moto-api/", tmp_path / "s3.log", env):
        boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
        ).create_bucket(Bucket="dvc-remote")
        yield url


def dvc_checkout(folder: Path) -> Path:
    folder.mkdir()
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        run(command, cwd=folder)
    (folder / "data.txt").write_text("the tracked bytes\n")
    run(["dvc", "add", "-q", "data.txt"], cwd=folder)
    return folder


def test_the_dvc_remote_key_goes_to_private_files_only(
    shell, keyed_s3: str, tmp_path: Path
) -> None:
    """A secret that starts with `-` (which breaks `dvc remote modify ... "$SECRET"`) and is
    typed at the prompt: dvc push and pull work against a store that checks it."""
    import boto3

    bash, home = shell
    checkout = dvc_checkout(tmp_path / "checkout")
    script = snippet("read -r -p 'DVC key id: '").replace("http://127.0.0.1:9000", keyed_s3)
    proc, argv = bash(script, checkout, stdin=f"{KEY_ID}\n{SECRET}\n")
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in argv and SECRET not in proc.stdout + proc.stderr
    assert "dvc push" in argv and "dvc pull" in argv
    stored = boto3.client(
        "s3",
        endpoint_url=keyed_s3,
        region_name="us-east-1",
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
    ).list_objects_v2(Bucket="dvc-remote", Prefix="store/")
    assert stored["KeyCount"] == 1, stored
    credentials = home / ".config" / "dvc-team" / "credentials"
    config_local = checkout / ".dvc" / "config.local"
    assert mode(credentials) == 0o600 and mode(config_local) == 0o600
    assert SECRET not in config_local.read_text()
    assert SECRET in credentials.read_text()


def test_a_wrong_dvc_key_is_refused_by_the_store(shell, keyed_s3: str, tmp_path: Path) -> None:
    bash, _ = shell
    checkout = dvc_checkout(tmp_path / "checkout")
    script = snippet("read -r -p 'DVC key id: '").replace("http://127.0.0.1:9000", keyed_s3)
    proc, _ = bash(script, checkout, stdin=f"{KEY_ID}\nnot-the-secret\n")
    assert proc.returncode != 0
    assert "not-the-secret" not in proc.stdout + proc.stderr
