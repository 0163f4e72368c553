"""Upgrading a store that has hosts from 0001 failed on SQLite: the batch rebuild of
``hosts`` dropped a table other tables reference ("FOREIGN KEY constraint failed")."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import text

from whimbrel.store import db


def test_upgrade_from_0001_keeps_hosts_and_their_settings(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    cfg = db.alembic_config(engine)
    with engine.begin() as c:
        cfg.attributes["connection"] = c
        command.upgrade(cfg, "0001")
        c.execute(
            text(
                "INSERT INTO hosts (name, uri, state, state_reason, hostname, host_uuid,"
                " arch, cpu_model, cpus, memory_mib, free_memory_mib, hypervisor,"
                " hypervisor_version, virt_type, machine_types) VALUES ('h1',"
                " 'qemu+tls://10.0.0.1/system', 'connected', '', '', '', '', '', 1, 1, 1,"
                " '', '', '', '[]')"
            )
        )
        c.execute(
            text(
                "INSERT INTO migration_settings (host_id, enabled, max_live_migrations,"
                " max_storage_migrations, networks, auth, performance,"
                " parallel_connections, encrypt) VALUES (1, 1, 3, 2, '[]', 'managed',"
                " 'tcp', 4, 0)"
            )
        )
    db.upgrade(engine)
    with engine.connect() as c:
        assert c.execute(text("SELECT name, addresses, maintenance FROM hosts")).one() == (
            "h1",
            "[]",
            0,
        )
        assert c.execute(text("SELECT max_live_migrations FROM migration_settings")).scalar() == 3
