"""Credentials at rest: sealed with Fernet (AES-128-CBC and HMAC-SHA256) under a key file
of mode 0600 beside the store, so that a copy of the store (a backup, a PostgreSQL dump)
holds no usable password.  Host settings, job ops, step results, logs and API answers
carry a reference, 'secret:ID', and the secret is opened only where it is used (a fence
agent's stdin).

Replicas sharing a store share the key: copy the file to each (as the token file).
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select
from sqlalchemy.orm import Session

from whimbrel.errors import HostUntrusted, InvalidInput, NotFound, WhimbrelError
from whimbrel.store.accounts import SealedSecret
from whimbrel.store.models import Host, Job

REF = "secret:"
# Option names that carry a secret, in fence-agents' vocabulary (password, passwd,
# snmp_priv_passwd, community, ...).
SECRET_NAME = re.compile(r"pass|secret|community|token", re.IGNORECASE)


def read_secret(path: str) -> str:
    """A password from a file its owner alone can read: a path that names any other file
    (a host URI comes from the API) would send its content to the host as a password."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise HostUntrusted(
            "E_SECRET_FILE_REFUSED", f"password file {path} cannot be read: {exc}", _SECRET_FIX
        ) from exc
    if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o077 or st.st_uid != os.getuid():
        raise HostUntrusted(
            "E_SECRET_FILE_REFUSED",
            f"password file {path} is not a regular file of this user with mode 0600",
            _SECRET_FIX,
        )
    return p.read_text().strip()


_SECRET_FIX = "put the password alone in a file of the manager's user, mode 0600 (chmod 600 FILE)"


def is_secret(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def is_ref(value: str) -> bool:
    return value.startswith(REF)


class Vault:
    def __init__(self, key_file: Path):
        self.key_file = key_file
        self._fernet = Fernet(self._key())

    def _key(self) -> bytes:
        """The key, made on first start (O_EXCL: two starts do not make two)."""
        path = self.key_file
        if not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as f:
                    f.write(Fernet.generate_key() + b"\n")
        st = path.stat()
        if st.st_mode & 0o077 or st.st_uid != os.getuid():
            raise InvalidInput(
                "E_SECRET_KEY_FILE_REFUSED",
                f"the key file {path} can be read by others (mode {oct(st.st_mode & 0o777)}) "
                "or belongs to another user",
                f"chown it to the manager's user and 'chmod 600 {path}'",
            )
        return path.read_bytes().strip()

    def seal(self, s: Session, owner: str, value: str) -> str:
        row = SealedSecret(
            id=secrets.token_hex(6),
            owner=owner[:255],
            sealed=self._fernet.encrypt(value.encode()).decode(),
        )
        s.add(row)
        s.flush()
        return REF + row.id

    def open(self, s: Session, ref: str) -> str:
        row = s.get(SealedSecret, ref.removeprefix(REF))
        if row is None:
            raise NotFound(
                "E_SECRET_NOT_FOUND",
                f"the stored secret {ref} is gone",
                "set the credential again (for a fence agent: 'whimbrel host fence set')",
            )
        try:
            return self._fernet.decrypt(row.sealed.encode()).decode()
        except InvalidToken:
            raise WhimbrelError(
                "E_SECRET_KEY_MISMATCH",
                f"the secret {ref} ({row.owner}) was sealed with another key than {self.key_file}",
                "give every replica the same key file (copy it from the replica that first "
                "started), or set the credential again",
            ) from None

    def seal_options(self, s: Session, owner: str, options: dict[str, str]) -> dict[str, str]:
        """``options`` with each secret value sealed; a reference may stand only for a
        secret option, and must exist (kept as it is: an undo puts one back)."""
        out = {}
        for k, v in options.items():
            if is_ref(v):
                if not is_secret(k):
                    raise InvalidInput(
                        "E_SECRET_REFERENCE_REFUSED",
                        f"option {k!r} is not a secret, so it cannot name a stored one ({v})",
                        "give its value",
                    )
                self.open(s, v)
                out[k] = v
            else:
                out[k] = self.seal(s, f"{owner} {k}", v) if is_secret(k) else v
        return out

    def open_options(self, s: Session, options: dict[str, str]) -> dict[str, str]:
        return {k: self.open(s, v) if is_secret(k) and is_ref(v) else v for k, v in options.items()}


def masked(options: dict[str, str]) -> dict[str, str]:
    """Options as answers and logs show them."""
    return {k: "***" if is_secret(k) else v for k, v in options.items()}


def _clear(options: dict[str, Any]) -> bool:
    return any(is_secret(k) and not is_ref(str(v)) for k, v in options.items())


def seal_stored(s: Session, vault: Vault) -> int:
    """Seal the fence passwords an older Whimbrel stored in clear, and mask them in the
    ops and results of its jobs; how many rows it changed."""
    n = 0
    for h in s.scalars(select(Host)):
        opts = dict((h.fence or {}).get("options", {}))
        if _clear(opts):
            h.fence = {**h.fence, "options": vault.seal_options(s, f"host {h.name} fence", opts)}
            n += 1
    for job in s.scalars(select(Job).where(Job.kind == "host.fence-set")):
        if _clear(job.op.get("options", {})):
            job.op = {**job.op, "options": masked(job.op["options"])}
            n += 1
        for step in job.steps:
            old = dict((step.result or {}).get("old") or {})
            if _clear(old.get("options", {})):
                old["options"] = masked(old["options"])
                step.result = {**(step.result or {}), "old": old}
                n += 1
    return n
