"""whimbrel job ..."""

from __future__ import annotations

import typer

from whimbrel.cli.context import client, err, out
from whimbrel.cli.inventory import JSON
from whimbrel.cli.render import emit_json, fields, table

job_app = typer.Typer(help="Jobs: every change Whimbrel makes, step by step.", no_args_is_help=True)


@job_app.command("list")
def job_list(json: bool = JSON, limit: int = typer.Option(30)) -> None:
    jobs = client().get("/jobs", params={"limit": limit})
    if json:
        return emit_json(out, jobs)
    table(
        out,
        "Jobs",
        ["ID", "KIND", "SUBJECT", "USER", "STATE", "PHASE", "%", "ERROR", "CREATED"],
        [
            [
                j["id"],
                j["kind"],
                j["subject"],
                j["user"],
                j["state"],
                j["phase"],
                j["percent"],
                (j["error"] or {}).get("code", ""),
                (j["created_at"] or "")[:19],
            ]
            for j in jobs
        ],
    )


@job_app.command("show")
def job_show(job_id: int, json: bool = JSON) -> None:
    j = client().get(f"/jobs/{job_id}")
    if json:
        return emit_json(out, j)
    steps = j.pop("steps")
    j.pop("op")
    error = j.pop("error")
    fields(out, f"Job {job_id}", j)
    if error:
        fields(out, "Error", error)
    table(
        out,
        "Steps",
        ["#", "STEP", "STATE", "WHAT", "ERROR"],
        [
            [
                s["index"] + 1,
                s["name"],
                s["state"],
                s["description"],
                (s["error"] or {}).get("code", ""),
            ]
            for s in steps
        ],
    )


@job_app.command("watch")
def job_watch(job_id: int) -> None:
    """Follow a job's progress until it ends."""
    done = client().follow(client().get(f"/jobs/{job_id}"), err)
    out.print(f"job {job_id}: {done['state']}")


@job_app.command("cancel")
def job_cancel(job_id: int) -> None:
    """Cancel a job: it stops between steps and undoes what it did."""
    client().post(f"/jobs/{job_id}/cancel")
    out.print(f"job {job_id}: cancel requested")
