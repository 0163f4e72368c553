"""Store rows as the JSON the API returns (and the CLI renders)."""

from __future__ import annotations

from typing import Any

from whimbrel.store.models import Cluster, Host, Job, Vm
from whimbrel.store.repo import cluster_of_vm, migration_settings


def _ts(v: Any) -> str | None:
    return v.isoformat() if v is not None else None


def host_view(h: Host, detail: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": h.name,
        "uri": h.uri,
        "cluster": h.cluster.name if h.cluster else None,
        "state": h.state,
        "state_reason": h.state_reason,
        "state_since": _ts(h.state_since),
        "fenced_at": _ts(h.fenced_at),
        "maintenance": h.maintenance,
        "hostname": h.hostname,
        "cpu_model": h.cpu_model,
        "cpus": h.cpus,
        "memory_mib": h.memory_mib,
        "free_memory_mib": h.free_memory_mib,
        "virt_type": h.virt_type,
        "vms": len(h.vms),
        "refreshed_at": _ts(h.refreshed_at),
    }
    if detail:
        out |= {
            "events": h.events,
            "host_uuid": h.host_uuid,
            "arch": h.arch,
            "hypervisor": f"{h.hypervisor} {h.hypervisor_version}",
            "machine_types": h.machine_types,
            "networks": [
                {"name": n.name, "bridge": n.bridge, "active": n.active} for n in h.networks
            ],
            "pools": [
                {
                    "name": p.name,
                    "path": p.path,
                    "capacity_bytes": p.capacity_bytes,
                    "available_bytes": p.available_bytes,
                    "active": p.active,
                }
                for p in h.pools
            ],
            "vm_names": sorted(v.name for v in h.vms),
        }
        out["migration"] = migration_view(h)
    return out


def migration_view(h: Host) -> dict[str, Any]:
    m = migration_settings(h)
    return {
        "host": h.name,
        "enabled": m.enabled,
        "max_live_migrations": m.max_live_migrations,
        "max_storage_migrations": m.max_storage_migrations,
        "networks": list(m.networks) or "any",
        "addresses": h.addresses,
        "auth": str(m.auth),
        "performance": str(m.performance),
        "parallel_connections": m.parallel_connections,
        "encrypt": m.encrypt,
        "peer_pki": m.peer_pki,
        "maintenance": h.maintenance,
    }


def _unsupported(v: Vm) -> bool:
    return any(f["severity"] == "error" for f in v.findings)


def cluster_view(c: Cluster) -> dict[str, Any]:
    return {
        "name": c.name,
        "reserve": c.reserve,
        "detection_s": c.detection_s,
        "isolation_response": c.isolation_response,
        "heartbeat_dir": c.heartbeat_dir,
        "postcopy": c.postcopy,
        "hosts": sorted(h.name for h in c.hosts),
        "shared_storage": [s.path for s in c.shared_storage],
        "vms": sorted(v.name for h in c.hosts for v in h.vms),
        "overcommit": c.overcommit or None,
        "unsupported": sorted(v.name for h in c.hosts for v in h.vms if _unsupported(v)),
    }


def vm_view(v: Vm) -> dict[str, Any]:
    return {
        "name": v.name,
        "uuid": v.uuid,
        "host": v.host.name if v.host else None,
        "cluster": cluster_of_vm(v),
        "state": v.state,
        "memory_mib": v.memory_mib,
        "vcpus": v.vcpus,
        "virt_type": v.virt_type,
        "machine": v.machine,
        "networks": v.networks,
        "ha": v.ha,
        "ha_priority": v.ha_priority,
        # VMM's "unsupported cluster configuration", with each reason.
        "unsupported_cluster_configuration": _unsupported(v),
        "findings": v.findings,
        "cdrom": v.cdrom or None,
        "boot_cdrom": v.boot_cdrom,
        "disks": [
            {
                "target": d.target,
                "path": d.path,
                "fmt": d.fmt,
                "size_bytes": d.size_bytes,
                "pool": d.pool,
                "shared": d.shared,
                "backing": d.backing or None,
            }
            for d in v.disks
        ],
    }


def job_view(j: Job, steps: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": j.id,
        "kind": j.kind,
        "subject": j.subject,
        "state": j.state,
        "phase": j.phase,
        "percent": j.percent,
        "message": j.message,
        "progress": j.progress,
        "error": j.error,
        "rollback": j.rollback,
        "manual_fix": j.manual_fix,
        "user": j.user or "(manager)",  # who asked; the manager itself for its own jobs
        "owner": j.owner,  # the replica that runs (or ran) it
        "claim": j.claim,  # 2 and up: taken over from a replica that died
        "created_at": _ts(j.created_at),
        "started_at": _ts(j.started_at),
        "finished_at": _ts(j.finished_at),
    }
    if steps:
        out["op"] = j.op
        out["steps"] = [
            {
                "index": s.index,
                "name": s.name,
                "description": s.description,
                "state": s.state,
                "result": s.result,
                "error": s.error,
                "started_at": _ts(s.started_at),
                "finished_at": _ts(s.finished_at),
            }
            for s in j.steps
        ]
    return out
