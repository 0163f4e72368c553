"""HTTP client of the manager, turning API errors back into Whimbrel errors.

``WHIMBREL_URL`` may name several replicas, comma-separated: a request goes to
the one that answered last, and to the next when it does not answer (any
request that could not connect; a read whatever the failure, since reading
twice is harmless).
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from whimbrel.api.tls import client_context
from whimbrel.config import Settings
from whimbrel.errors import HostUnreachable, Unauthorized, WhimbrelError

FINAL = {"Completed", "Terminated", "Killed", "Exception"}


class Client:
    def __init__(
        self,
        settings: Settings,
        transport: httpx.BaseTransport | None = None,
        http: httpx.Client | None = None,  # a client of its own (tests: the app in process)
    ):
        self.settings = settings
        token = ""
        if settings.token_file.exists():
            token = settings.token_file.read_text().strip()
        self.urls = [u.strip().rstrip("/") for u in settings.api_url.split(",") if u.strip()]
        self._clients = [
            httpx.Client(
                base_url=url,
                headers={"Authorization": f"Bearer {token}"} if token else {},
                timeout=60.0,
                transport=transport,
                verify=client_context(settings) if url.startswith("https:") else True,
            )
            for url in self.urls
        ]
        if http is not None:
            self.urls, self._clients = [str(http.base_url)], [http]
        self._first = 0  # the replica that answered last
        self.has_token = bool(token)

    @property
    def http(self) -> httpx.Client:
        return self._clients[self._first]

    def request(self, method: str, path: str, **kw: Any) -> Any:
        return self._check(self.send(method, path, **kw))

    def send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """The answer of the first replica that answers."""
        failures = []
        n = len(self._clients)
        for k in range(n):
            i = (self._first + k) % n
            try:
                resp = self._clients[i].request(method, "/api/v1" + path, **kw)
            except httpx.TransportError as exc:
                failures.append(f"{self.urls[i]}: {exc}")
                if method == "GET" or isinstance(exc, httpx.ConnectError):
                    continue
                break  # it may have arrived: sending it again could act twice
            self._first = i
            return resp
        raise HostUnreachable(
            "E_MANAGER_DOWN",
            f"the Whimbrel manager at {', '.join(self.urls)} does not answer",
            "start it with 'whimbrel serve' (or 'whimbrel serve --background'), or name "
            "every replica in WHIMBREL_URL, comma-separated",
            "; ".join(failures),
        )

    def pages(self, path: str, **params: Any) -> list[Any]:
        """Every row of a paged list, following ``X-Next-Cursor``."""
        rows: list[Any] = []
        cursor = ""
        while True:
            resp = self.send("GET", path, params={**params, "cursor": cursor})
            rows.extend(self._check(resp))
            cursor = resp.headers.get("X-Next-Cursor", "")
            if not cursor:
                return rows

    def _check(self, resp: httpx.Response) -> Any:
        if resp.status_code >= 400:
            try:
                err = resp.json()["error"]
            except (ValueError, KeyError, TypeError):
                err = {"code": "E_API", "cause": resp.text[:500], "fix": "see the manager's log"}
            if resp.status_code == 401 and not self.has_token:
                raise Unauthorized(
                    "E_AUTH_TOKEN",
                    f"no API token in {self.settings.token_file}",
                    "run the CLI as the user that runs 'whimbrel serve', or copy its token file",
                )
            raise WhimbrelError.from_dict(err)
        return resp.json()

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)

    def follow(self, job: dict[str, Any], console: Console, quiet: bool = False) -> dict[str, Any]:
        """Show a job's progress until it ends; raise its error if it failed."""
        job_id = job["id"]
        with Progress(
            TextColumn("[bold]job {task.fields[job]}[/] {task.fields[phase]:<14}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=console,
            transient=True,
            disable=quiet or not console.is_terminal,
        ) as bar:
            task = bar.add_task(job.get("message", ""), total=100, job=job_id, phase=job["phase"])
            kids: dict[str, Any] = {}  # a job that runs child jobs shows a bar per VM
            while job["state"] not in FINAL:
                time.sleep(0.25)
                job = self.get(f"/jobs/{job_id}")
                bar.update(
                    task, completed=job["percent"], description=job["message"], phase=job["phase"]
                )
                for c in (job.get("progress") or {}).get("children", []):
                    label = f"{c['job'] or '-'} {c['vm']}"
                    if c["vm"] not in kids:
                        kids[c["vm"]] = bar.add_task("", total=100, job=label, phase="")
                    done = c["state"] in FINAL or c["state"] in ("refused", "skipped")
                    bar.update(
                        kids[c["vm"]],
                        completed=100 if c["state"] == "Completed" else c["percent"],
                        description=f"{c['action']} {c['to']} {c['state'] if done else ''} "
                        f"{c['message']}",
                        phase=c["phase"] or c["state"],
                    )
        if job["state"] != "Completed":
            raise job_error(job)
        return job


def job_error(job: dict[str, Any]) -> WhimbrelError:
    err = dict(job.get("error") or {})
    if job["state"] == "Terminated":
        err = {
            "code": "E_JOB_CANCELLED",
            "category": "conflict",
            "cause": f"job {job['id']} was cancelled",
            "fix": "run it again when ready",
        }
    elif job["state"] == "Killed":
        err = {
            "code": "E_JOB_KILLED",
            "category": "internal",
            "cause": f"job {job['id']} was interrupted by a manager restart",
            "fix": "run it again",
        }
    rolled = {
        "clean": "everything it had done was undone",
        "failed": "undoing it failed: " + job.get("manual_fix", ""),
        # A stranded step: undoing would have taken its ground away; the error says the fix.
        "none": "nothing was undone" if job.get("manual_fix") else "",
    }.get(job["rollback"], "")
    if rolled:
        err["cause"] = f"{err.get('cause', '')} (job {job['id']}: {rolled})"
    return WhimbrelError.from_dict(err)
