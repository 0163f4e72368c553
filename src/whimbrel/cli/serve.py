"""whimbrel serve: the manager daemon (API + job runner)."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import typer

from whimbrel.api.tls import server_files
from whimbrel.cli.context import err, out, settings
from whimbrel.config import DEFAULT_PORT
from whimbrel.errors import HostUnreachable


def _healthy(url: str) -> bool:
    try:
        # Its own child's readiness, before any token is sent: no certificate to check yet.
        r = httpx.get(url + "/api/v1/health", timeout=1.0, verify=False)
        return r.status_code == 200
    except httpx.TransportError:
        return False


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(DEFAULT_PORT),
    background: bool = typer.Option(False, "--background", help="Detach; log to the data dir."),
    stop: bool = typer.Option(False, "--stop", help="Stop a manager started with --background."),
    replica_name: str = typer.Option(
        "",
        "--replica-name",
        help="This replica's name among managers sharing a PostgreSQL store "
        "(default: MACHINE:PORT).",
    ),
    tls: bool = typer.Option(
        False, "--tls", help="HTTPS with a certificate from Whimbrel's CA (issued once)."
    ),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help="HTTPS with this PEM chain."),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="The key of --tls-cert."),
    admin_password_file: Path | None = typer.Option(
        None,
        "--admin-password-file",
        help="On the first start (a store without users): the password of the first "
        "administrator, 'admin'. Without it one is made and printed once.",
    ),
) -> None:
    """Run the manager: REST API (OpenAPI at /docs) and job runner.  Several may share
    one PostgreSQL store (WHIMBREL_DB_URL) as replicas; on SQLite only one may run."""
    s = settings()
    if stop:
        return _stop()
    served = server_files(s, host, tls_cert, tls_key, tls)  # refused before anything starts
    url = f"{'https' if served else 'http'}://{host}:{port}"
    name = replica_name or f"{socket.gethostname()}:{port}"
    if background:
        if _healthy(url):
            out.print(f"manager already running at {url}")
            return
        s.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(s.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        log = os.fdopen(fd, "ab")  # handed to the daemon
        made = None
        if admin_password_file is None:  # the daemon takes it (and deletes it) on a first start
            made = admin_password_file = s.home / f".first-password.{os.getpid()}"
            password = secrets.token_urlsafe(15)
            os.close(os.open(made, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            made.write_text(password + "\n")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "whimbrel.cli.main",
                "serve",
                "--host",
                host,
                "--port",
                str(port),
                "--replica-name",
                name,
                "--admin-password-file",
                str(admin_password_file),
                *(["--tls-cert", str(served[0]), "--tls-key", str(served[1])] if served else []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        s.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + 30
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = s.log_file.read_text(errors="replace").strip().splitlines()[-3:]
                raise HostUnreachable(
                    "E_MANAGER_START",
                    "the manager did not start: " + (" / ".join(tail) or "no output"),
                    f"read {s.log_file}",
                )
            time.sleep(0.1)
        out.print(f"manager running at {url} (pid {proc.pid}, log {s.log_file})")
        if made is not None and not made.exists():
            _first_password(password)
        elif made is not None:
            made.unlink()  # there were users: it was not needed
        return
    import uvicorn

    from whimbrel.api.app import create_app
    from whimbrel.manager import Manager

    first = str(admin_password_file or "")
    manager = Manager(s, name=name, url=url, first_password_file=first)
    if first and manager.first_user_made and ".first-password." in first:
        Path(first).unlink(missing_ok=True)  # a background start's: the parent prints it
    elif manager.first_password:
        _first_password(manager.first_password)
    manager.start()  # a refusal (another manager on SQLite, say) comes before anything listens
    err.print(f"replica {name}; token in {s.token_file}; API at {url}/api/v1, docs at {url}/docs")
    try:
        uvicorn.run(
            create_app(manager, start_runner=False),
            host=host,
            port=port,
            log_level="warning",
            # Event streams never end on their own: a stop waits 5 s for them, no more
            # (jobs run in the manager, not in requests, and survive a restart).
            timeout_graceful_shutdown=5,
            ssl_certfile=str(served[0]) if served else None,
            ssl_keyfile=str(served[1]) if served else None,
        )
    finally:
        manager.stop()


def _first_password(password: str) -> None:
    err.print(
        f"first administrator: user 'admin', password {password} (shown once: keep it, or "
        "set another with 'whimbrel user password admin'). This machine's CLI uses the "
        "token file."
    )


def console() -> None:
    """Print the web console's address, with this user's token in the link."""
    s = settings()
    if not s.token_file.exists():
        raise HostUnreachable(
            "E_MANAGER_NEVER_STARTED",
            f"no API token in {s.token_file}: the manager has not run with this data directory",
            "start it with 'whimbrel serve --background'",
        )
    token = s.token_file.read_text().strip()
    out.print(f"{s.api_url}/#token={token}", soft_wrap=True)


def _stop() -> None:
    s = settings()
    try:
        pid = int(s.pid_file.read_text())
    except (OSError, ValueError):
        out.print("no background manager recorded")
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        s.pid_file.unlink(missing_ok=True)
        out.print(f"manager (pid {pid}) was not running")
        return
    # Wait until it has exited, so that a restart right after finds the port free.
    deadline = time.monotonic() + 60
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    s.pid_file.unlink(missing_ok=True)
    out.print(f"manager (pid {pid}) stopped")
