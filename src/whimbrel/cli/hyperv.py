"""whimbrel hyperv ...: what Hyper-V hosts need outside Whimbrel's manager.

The delegation commands talk to Active Directory themselves (LDAPS, the
WHIMBREL_AD_* settings of the manager, or the options given), as an
administrator would in "Active Directory Users and Computers".
"""

from __future__ import annotations

from dataclasses import replace

import typer

from whimbrel.ad import delegation
from whimbrel.ad.directory import Directory, LdapDirectory, config_from_env
from whimbrel.cli.context import err, out
from whimbrel.cli.inventory import JSON
from whimbrel.cli.render import emit_json, table
from whimbrel.errors import InvalidInput, WrongState
from whimbrel.preflight.finding import blocking

hyperv_app = typer.Typer(help="Hyper-V hosts: Active Directory delegation.", no_args_is_help=True)
delegation_app = typer.Typer(
    help="Kerberos constrained delegation between two Hyper-V hosts.",
    no_args_is_help=True,
)
hyperv_app.add_typer(delegation_app, name="delegation")

DC = typer.Option("", "--dc", help="ldaps://DC (default: $WHIMBREL_AD_URL)")
USER = typer.Option("", "--user", help="a domain admin, user@realm (default: $WHIMBREL_AD_USER)")
PASSWORD_FILE = typer.Option(
    "", "--password-file", help="its password, in a file (default: $WHIMBREL_AD_PASSWORD_FILE)"
)
CA = typer.Option("", "--ca", help="CA of the DC's certificate (default: $WHIMBREL_AD_CA)")


def _directory(dc: str, user: str, password_file: str, ca: str) -> Directory:
    env = config_from_env()
    cfg = replace(
        env,
        url=dc or env.url,
        user=user or env.user,
        password_file=password_file or env.password_file,
        ca=ca or env.ca,
    )
    if not (cfg.url and cfg.user and cfg.password_file):
        raise InvalidInput(
            "E_AD_NOT_CONFIGURED",
            "no directory to talk to",
            "give --dc, --user and --password-file, or set WHIMBREL_AD_URL, WHIMBREL_AD_USER "
            "and WHIMBREL_AD_PASSWORD_FILE",
        )
    return LdapDirectory(cfg)


@delegation_app.command("check")
def delegation_check(
    source: str,
    dest: str,
    json: bool = JSON,
    dc: str = DC,
    user: str = USER,
    password_file: str = PASSWORD_FILE,
    ca: str = CA,
) -> None:
    """What a Kerberos live migration between SOURCE and DEST lacks, both directions."""
    d = _directory(dc, user, password_file, ca)
    found = delegation.check(d, source, dest) + delegation.check(d, dest, source)
    if json:
        emit_json(out, [f.to_dict() for f in found])
    elif found:
        table(
            out,
            f"Delegation between {source} and {dest}",
            ["CODE", "SUBJECT", "CAUSE", "FIX"],
            [[f.code, f.subject, f.cause, f.fix] for f in found],
        )
    else:
        out.print(f"{source} and {dest} may delegate to each other for live migration.")
    errors = blocking(found)
    if errors:
        raise WrongState(
            "E_DELEGATION_INCOMPLETE",
            f"{len(errors)} finding(s) stop Kerberos live migration between {source} and {dest}: "
            + ", ".join(sorted({f.code for f in errors})),
            "fix each finding listed above",
        )


@delegation_app.command("grant")
def delegation_grant(
    source: str,
    dest: str,
    kerberos_only: bool = typer.Option(
        False,
        "--kerberos-only",
        help="'use Kerberos only', as Microsoft's walkthrough does: enough for moves started "
        "on the source, not for moves started remotely (Whimbrel's)",
    ),
    json: bool = JSON,
    dc: str = DC,
    user: str = USER,
    password_file: str = PASSWORD_FILE,
    ca: str = CA,
) -> None:
    """Let SOURCE and DEST delegate to each other: cifs and Microsoft Virtual System
    Migration Service, short and full names, "use any authentication protocol"."""
    d = _directory(dc, user, password_file, ca)
    done = delegation.grant(d, source, dest, kerberos_only)
    if json:
        return emit_json(out, [g.__dict__ for g in done])
    for g in done:
        added = ", ".join(g.added) or "nothing new"
        proto = "any authentication protocol" if g.any_protocol else "Kerberos only"
        out.print(f"{g.source}: may delegate to {added}; {proto}")
    if kerberos_only:
        err.print("warning: a move Whimbrel starts will fail with 0x8009030E on 'Kerberos only'")
    err.print(f"note: {delegation.REPLICATION}")
