"""whimbrel login | user | role | token | audit: who may use the manager, and what they did.

Passwords come from a file, from stdin ('-') or from a prompt, never from the command
line, where every user of the machine could read them in the process list."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

import typer

from whimbrel.cli.context import client, err, out, settings
from whimbrel.cli.inventory import JSON
from whimbrel.cli.render import emit_json, table
from whimbrel.errors import InvalidInput

user_app = typer.Typer(help="Users of the manager: local or from the directory.")
role_app = typer.Typer(help="Roles of users, on the fleet or on one cluster.")
token_app = typer.Typer(help="API tokens: expiring, revocable, one user's each.")
audit_app = typer.Typer(help="The audit trail: every change, refused login and token.")
for _group in (user_app, role_app, token_app, audit_app):
    _group.info.no_args_is_help = True

PASSWORD_FILE = typer.Option(
    None, "--password-file", help="Read the password from this file, or '-' for stdin."
)
CLUSTER = typer.Option("", "--cluster", help="Only on this cluster (default: the fleet).")


def read_password(path: str | None, confirm: bool = False) -> str:
    if path == "-":
        return sys.stdin.readline().rstrip("\n")
    if path:
        try:
            return Path(path).read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(
                "E_PASSWORD_SOURCE",
                f"the password file {path} cannot be read: {exc}",
                "give a readable text file holding the password alone, or '-' for stdin",
            ) from exc
    if not sys.stdin.isatty():
        raise InvalidInput(
            "E_PASSWORD_SOURCE",
            "no password given and no terminal to ask on",
            "give --password-file FILE, or --password-file - and the password on stdin",
        )
    first = getpass.getpass("password: ")
    if confirm and getpass.getpass("again: ") != first:
        raise InvalidInput("E_PASSWORD_MISMATCH", "the two passwords differ", "type it again")
    return first


def save_token(token: str) -> Path:
    path = settings().token_file
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return path


def login(
    user: str = typer.Option(..., "--user", help="Your user name."),
    password_file: str | None = PASSWORD_FILE,
) -> None:
    """Log in for 12 hours: the token goes to the token file, which the CLI reads."""
    answer = client().post("/login", {"user": user, "password": read_password(password_file)})
    path = save_token(answer["token"])
    out.print(f"logged in as {user} until {answer['expires_at']}; token in {path}")


@user_app.command("list")
def user_list(json: bool = JSON) -> None:
    rows = client().get("/users")
    if json:
        return emit_json(out, rows)
    table(
        out,
        "Users",
        ["NAME", "REALM", "ROLES", "TOKENS"],
        [
            [
                u["name"],
                u["realm"],
                ", ".join(f"{g['role']} on {g['cluster'] or 'the fleet'}" for g in u["grants"])
                or "-",
                u["tokens"],
            ]
            for u in rows
        ],
    )


@user_app.command("add")
def user_add(
    name: str,
    realm: str = typer.Option("local", help="'local', or 'ldap' (the directory's password)."),
    password_file: str | None = PASSWORD_FILE,
) -> None:
    """Add a user (no role yet: grant one with 'whimbrel role grant')."""
    password = read_password(password_file, confirm=True) if realm == "local" else ""
    client().post("/users", {"name": name, "realm": realm, "password": password})
    out.print(f"user {name} added; grant a role with 'whimbrel role grant {name} ROLE'")


@user_app.command("remove")
def user_remove(name: str) -> None:
    """Remove a user, their grants and tokens (the fleet keeps one administrator)."""
    client().delete(f"/users/{name}")
    out.print(f"user {name} removed")


@user_app.command("password")
def user_password(name: str, password_file: str | None = PASSWORD_FILE) -> None:
    """Set a local user's password (your own, or anyone's as a fleet administrator)."""
    password = read_password(password_file, confirm=True)
    client().request("PUT", f"/users/{name}/password", json={"password": password})
    out.print(f"password of {name} set")


@user_app.command("whoami")
def whoami(json: bool = JSON) -> None:
    me = client().get("/whoami")
    if json:
        return emit_json(out, me)
    roles = ", ".join(f"{g['role']} on {g['cluster'] or 'the fleet'}" for g in me["grants"])
    out.print(f"{me['user']} (token {me['token']}): {roles or 'no role'}")


@role_app.command("grant")
def role_grant(user: str, role: str, cluster: str = CLUSTER) -> None:
    """Grant administrator, operator or read-only, on the fleet or one cluster."""
    client().post(f"/users/{user}/grants", {"role": role, "cluster": cluster})
    out.print(f"{user} is {role} on {f'cluster {cluster}' if cluster else 'the fleet'}")


@role_app.command("revoke")
def role_revoke(user: str, role: str, cluster: str = CLUSTER) -> None:
    client().delete(f"/users/{user}/grants", params={"role": role, "cluster": cluster})
    out.print(f"{user} is no longer {role} on {f'cluster {cluster}' if cluster else 'the fleet'}")


@token_app.command("create")
def token_create(
    label: str = typer.Option("", help="What the token is for."),
    expires: str = typer.Option("30d", help="30s, 90m, 12h, 30d (the default), or never."),
    user: str = typer.Option("", help="Another user's (fleet administrators only)."),
    output: Path | None = typer.Option(
        None, "--output", help="Write the token to this file (0600) instead of printing it."
    ),
) -> None:
    """Create a token; it is shown once."""
    t = client().post("/tokens", {"label": label, "expires": expires, "user": user})
    if output is not None:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(t["token"] + "\n")
        out.print(f"token {t['id']} of {t['user']} written to {output}")
        return
    out.print(t["token"], soft_wrap=True)
    err.print(f"token {t['id']} of {t['user']}, until {t['expires_at'] or 'revoked'}: shown once")


@token_app.command("list")
def token_list(
    user: str = typer.Option("", help="Another user's (fleet administrators only)."),
    all_users: bool = typer.Option(False, "--all", help="Every user's."),
    json: bool = JSON,
) -> None:
    rows = client().get("/tokens", params={"user": user, "all_users": all_users})
    if json:
        return emit_json(out, rows)
    table(
        out,
        "API tokens",
        ["ID", "USER", "LABEL", "CREATED", "EXPIRES", "REVOKED"],
        [
            [
                t["id"],
                t["user"],
                t["label"] or "-",
                t["created_at"][:19],
                (t["expires_at"] or "never")[:19],
                (t["revoked_at"] or "-")[:19],
            ]
            for t in rows
        ],
    )


@token_app.command("revoke")
def token_revoke(token_id: str) -> None:
    """Revoke a token at once (your own, or anyone's as a fleet administrator)."""
    client().delete(f"/tokens/{token_id}")
    out.print(f"token {token_id} revoked")


@audit_app.command("list")
def audit_list(
    user: str = typer.Option("", help="Only this user's."),
    action: str = typer.Option("", help="Only this op, such as vm.migrate or login."),
    failed: bool | None = typer.Option(None, "--failed/--succeeded", help="Only refusals."),
    since: str = typer.Option("", help="Only from this time on (ISO 8601)."),
    limit: int = typer.Option(50, help="How many, newest first (at most 500)."),
    json: bool = JSON,
) -> None:
    params: dict[str, object] = {"limit": limit}
    for key, value in (("user", user), ("action", action), ("since", since)):
        if value:
            params[key] = value
    if failed is not None:
        params["failed"] = failed
    rows = client().get("/audit", params=params)
    if json:
        return emit_json(out, rows)
    table(
        out,
        "Audit trail",
        ["TIME", "USER", "FROM", "ACTION", "REQUEST", "STATUS", "CODE", "JOB"],
        [
            [
                e["at"][:19],
                e["user"] or "-",
                e["source"],
                e["action"] or "-",
                f"{e['method']} {e['path']}",
                e["status"],
                e["code"] or "-",
                e["job"] or "-",
            ]
            for e in rows
        ],
    )
