"""The ZenML server `make zenml-stack` uses, with ZenML's password login: `team zenml-server`.

    mlpipeline team zenml-server           # start (or reuse) it, log this client in
    mlpipeline team zenml-server --stop    # stop it

`zenml login --local` cannot do this: ZenML 0.98 starts that server with `NO_AUTH`
(`zen_server/deploy/daemon/daemon_zen_server.py`), so any local process reads every secret
from its API. This one is ZenML's own server app (`zenml.zen_server.zen_server_api:app`
under uvicorn) on 127.0.0.1 (or --host: `zenml-stack` puts it on its step containers'
network's gateway), started with `OAUTH2_PASSWORD_BEARER`: every API call but
/health needs a login. On its first start it creates one account (ACCOUNT) with a random
password; this client logs in with it and keeps it in ZenML's credentials file.

Everything lives in `<ZenML config folder>/team-server/`, mode 700, each file 600 (the server
runs under umask 077): its own ZenML config with the SQLite `zenml.db` (secrets included),
the password, the key that signs its tokens, its pid and its log. Analytics are off for the
server (ZENML_ANALYTICS_OPT_IN=false) and for this client (its config's analytics_opt_in).
The server's environment holds none of the stack's credentials.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import click

from mlpipeline.commands.console import command
from mlpipeline.domain.errors import PipelineError

log = logging.getLogger("mlpipeline.zenml_server")

DEFAULT_SERVER_PORT = 8237
DEFAULT_SERVER_HOST = "127.0.0.1"
ACCOUNT = "pipeline"
LOGIN_SCHEME = "OAUTH2_PASSWORD_BEARER"
SERVER_APP = "zenml.zen_server.zen_server_api:app"
# Seconds the server may take to answer /health: its first start creates and migrates the
# database, about 10 s on a quiet machine and several times that on a loaded one.
START_TIMEOUT = 300
# What the server process inherits from the caller's environment: nothing secret.
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")


@dataclass(frozen=True)
class ZenServer:
    folder: Path
    port: int
    host: str = DEFAULT_SERVER_HOST

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.folder / "server.pid"

    @property
    def log_file(self) -> Path:
        return self.folder / "server.log"

    @property
    def config_path(self) -> Path:
        return self.folder / "config"


def client_config_folder() -> Path:
    """The client's ZenML config folder ($ZENML_CONFIG_PATH, else ZenML's default)."""
    from zenml.config.global_config import GlobalConfiguration

    return Path(GlobalConfiguration().config_directory)


def server_for(port: int, host: str = DEFAULT_SERVER_HOST) -> ZenServer:
    return ZenServer(client_config_folder() / "team-server", port, host)


def private_file(path: Path) -> str:
    """The content of a 600 file holding a random secret, made if missing."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    path.chmod(0o600)
    return path.read_text().strip()


def server_info(url: str) -> dict | None:
    """The server's /api/v1/info (it needs no login), or None when nothing answers."""
    try:
        with urllib.request.urlopen(f"{url}/api/v1/info", timeout=10) as answer:
            return json.loads(answer.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
        return None


def port_taken(host: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


def running_pid(server: ZenServer) -> int | None:
    """The pid of the server this folder started, if it still runs."""
    if not server.pid_file.exists():
        return None
    pid = int(server.pid_file.read_text())
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        running = SERVER_APP in cmdline.read_bytes().decode(errors="replace")
    except OSError:
        return None
    return pid if running else None


def start(server: ZenServer) -> None:
    """Start the server, or reuse the one already answering with a login on its port."""
    server.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    server.folder.chmod(0o700)
    info = server_info(server.url)
    if info is not None:
        if info.get("auth_scheme") != LOGIN_SCHEME:
            raise PipelineError(
                f"ZenML server on port {server.port} runs with {info.get('auth_scheme')}, "
                "not a login (zenml login --local's?): stop it (zenml logout --local) or set "
                "ZENML_SERVER_PORT to a free port"
            )
        return
    elsewhere = running_pid(server)
    if elsewhere is not None:
        # One database, one server: a second one on another address would share it.
        raise PipelineError(
            f"the ZenML server of {server.folder} runs (pid {elsewhere}) but not on "
            f"{server.url}: stop it first (mlpipeline team zenml-server --stop)"
        )
    if port_taken(server.host, server.port):
        raise PipelineError(
            f"ZENML_SERVER_PORT {server.port}: taken by something that is not a ZenML server"
        )
    env = {key: os.environ[key] for key in INHERITED if key in os.environ}
    env.update(
        ZENML_CONFIG_PATH=str(server.config_path),
        ZENML_SERVER="true",
        ZENML_SERVER_AUTH_SCHEME=LOGIN_SCHEME,
        ZENML_SERVER_AUTO_ACTIVATE="true",
        ZENML_DEFAULT_USER_NAME=ACCOUNT,
        ZENML_DEFAULT_USER_PASSWORD=private_file(server.folder / "password"),
        # Tokens stay valid across restarts: the key is kept, not drawn at each start.
        ZENML_SERVER_JWT_SECRET_KEY=private_file(server.folder / "jwt_secret_key"),
        ZENML_ANALYTICS_OPT_IN="false",
        ZENML_LOGGING_COLORS_DISABLED="true",
    )
    uvicorn = [sys.executable, "-m", "uvicorn", SERVER_APP, "--host", server.host]
    log_fd = os.open(server.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(log_fd, "a") as log_output:
        process = subprocess.Popen(
            [*uvicorn, "--port", str(server.port), "--no-server-header"],
            cwd=server.folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            umask=0o077,
        )
    server.pid_file.write_text(f"{process.pid}\n")
    server.pid_file.chmod(0o600)
    deadline = time.monotonic() + START_TIMEOUT
    while server_info(server.url) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            tail = server.log_file.read_text().strip().splitlines()[-1:] or ["?"]
            process.kill()
            raise PipelineError(f"ZenML server did not start ({server.log_file}): {tail[0]}")
        time.sleep(0.5)


def login(server: ZenServer) -> None:
    """Log this client in as ACCOUNT; its config files 600, its analytics off."""
    from zenml.config.global_config import GlobalConfiguration
    from zenml.login.credentials_store import get_credentials_store
    from zenml.zen_stores.rest_zen_store import RestZenStoreConfiguration

    config = GlobalConfiguration()
    config.analytics_opt_in = False
    password = private_file(server.folder / "password")
    get_credentials_store().set_password(server.url, ACCOUNT, password)
    config.set_store(RestZenStoreConfiguration(url=server.url))
    private_client_files(Path(config.config_directory))


def private_client_files(folder: Path) -> None:
    """The client's folder 700, its files 600 (ZenML rewrites them in place: modes stay)."""
    folder.chmod(0o700)
    for path in folder.iterdir():
        if path.is_file():
            path.chmod(0o600)
        elif path.name == "local_stores":
            path.chmod(0o700)


def stop(server: ZenServer) -> bool:
    """Stop the server this folder started; False when none runs."""
    if not server.pid_file.exists():
        return False
    pid = running_pid(server)
    cmdline = Path(f"/proc/{pid}/cmdline")
    running = pid is not None
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while cmdline.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        if cmdline.exists():
            os.kill(pid, signal.SIGKILL)
    server.pid_file.unlink()
    return running


def ensure_logged_in(port: int, host: str = DEFAULT_SERVER_HOST) -> ZenServer:
    """The server started (or reused) on HOST and this client logged in to it."""
    server = server_for(port, host)
    start(server)
    login(server)
    return server


# The local ZenML server's port, for zenml-server and zenml-stack alike.
port_option = click.option(
    "--port",
    envvar="ZENML_SERVER_PORT",
    type=int,
    default=DEFAULT_SERVER_PORT,
    show_default=True,
    help="the local ZenML server's port (or $ZENML_SERVER_PORT)",
)


@command("zenml-server", help="Start the ZenML server with a login, and log in (docs/zenml.md).")
@port_option
@click.option(
    "--host",
    envvar="ZENML_SERVER_HOST",
    default=DEFAULT_SERVER_HOST,
    show_default=True,
    help="the address it listens on, one of this machine's (or $ZENML_SERVER_HOST)",
)
@click.option("--stop", "stop_it", is_flag=True, help="stop the server instead")
def zenml_server(port: int, host: str, stop_it: bool) -> None:
    if stop_it:
        server = server_for(port)
        log.info("ZenML server in %s: %s", server.folder, "stopped" if stop(server) else "none")
        return
    server = ensure_logged_in(port, host)
    log.info("ZenML server %s, logged in as %s (data in %s)", server.url, ACCOUNT, server.folder)
