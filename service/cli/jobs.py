"""The commands that show jobs: `train` (submit, then follow), `watch` (a
live progress bar from the job's event stream, then a search's leaderboard),
`jobs` (the listing) and `cancel`. Exit status 0 for a job that succeeded,
1 for one that failed or was cancelled."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table

from models.jobs.store import FINAL_STATES
from service.cli.common import client_for, console, dataset_id, out
from service.cli.search import leaderboard, number_text, ranking_of
from service.client import ApiError, Client, Event


def run_train(arguments: argparse.Namespace) -> int:
    client = client_for(arguments)
    document = json.loads(arguments.spec.read_text())
    spec = document.get("spec", document)
    model = arguments.model or document.get("model")
    if not model:
        raise ApiError(0, "Name the model: --model NAME (the spec file has no 'model').")
    dataset = dataset_id(client, arguments.data, arguments.target)
    job = client.submit(model, spec, dataset, search=document.get("search"))
    console.print(f"job {job['id']}: training {model!r}")
    if arguments.detach:
        out.print_json(data=job)
        return 0
    return _follow(client, job["id"])


def run_watch(arguments: argparse.Namespace) -> int:
    return _follow(client_for(arguments), arguments.job)


def _follow(client: Client, job_id: str) -> int:
    """A live progress bar from the job's event stream, until the job ends."""
    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("epoch {task.completed:.0f}/{task.total:.0f}"),
               TextColumn("{task.fields[logs]}"), TextColumn("ETA {task.fields[eta]}"))  # fmt: skip
    job: dict[str, Any] = {}
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("queued", total=1, logs="", eta="-")
        while job.get("state") not in FINAL_STATES:
            for event in client.events(job_id):  # reconnects if the stream ends early
                job = _show(event, job, progress, bar)
    if _has_trials(job):
        # The stream's state events carry no trials: the final record has them.
        job = client.json("GET", f"/v1/jobs/{job_id}")
        if board := leaderboard(job):
            sys.stdout.write(board + "\n")
    return _summary(job)


def _has_trials(job: Mapping[str, Any]) -> bool:
    """A search or a k-fold job: many models trained, `trials` in the record."""
    fit = (job.get("spec") or {}).get("fit") or {}
    return bool(job.get("search") or job.get("trials") or fit.get("folds"))


def _show(event: Event, job: dict[str, Any], progress: Progress, bar: TaskID) -> dict[str, Any]:
    if event.name == "snapshot":
        job = event.data
        done, epochs = job["progress"]["epoch"] or 0, job["progress"]["epochs"] or 1
        progress.update(bar, description=job["state"], total=epochs, completed=done,
                        logs=_logs(job["metrics"]))  # fmt: skip
    elif event.name == "epoch":
        data = event.data
        eta = "-" if data["eta_s"] is None else f"{data['eta_s']:.1f}s"
        progress.update(bar, description="running", total=data["epochs"], completed=data["epoch"],
                        logs=_entry_logs(data["logs"], job), eta=eta)  # fmt: skip
    elif event.name == "state":
        job = {**job, **event.data}
        progress.update(bar, description=event.data["state"])
        if event.data["state"] == "succeeded":
            progress.update(bar, completed=progress.tasks[0].total, eta="0s")
    return job


def _summary(job: dict[str, Any]) -> int:
    if job["state"] == "succeeded" and job.get("parent"):  # a group of a search: it publishes
        console.print(f"[green]succeeded[/green]: group {job.get('group')} of search "
                      f"{job['parent']}, which publishes the best trial")  # fmt: skip
        return 0
    if job["state"] == "succeeded":
        result = job["result"]
        console.print(f"[green]succeeded[/green]: {result['model']} version {result['version']}"
                      f"  {_logs(result.get('metrics') or {})}")  # fmt: skip
        return 0
    reason = (job.get("error") or {}).get("message", "")
    console.print(f"[red]{job['state']}[/red] {reason}")
    return 1


def _logs(logs: dict[str, float]) -> str:
    return "  ".join(f"{name} {value:.4g}" for name, value in logs.items())


def _entry_logs(logs: dict[str, Any], job: Mapping[str, Any]) -> str:
    """One epoch's logs; for a search's group (its trials' logs under
    `"<trial>:<metric>"`), the spread of the ranking metric over its trials."""
    if "group" not in logs:
        return _logs(logs)
    metric, _ = ranking_of(job)
    for name in (metric, "loss"):
        values = [value for key, value in logs.items()
                  if key.count(":") == 1 and key.endswith(f":{name}")]  # fmt: skip
        if values:
            spread = number_text(min(values)) + (
                f"..{number_text(max(values))}" if len(values) > 1 else ""
            )
            return f"group {logs['group']}  {name} {spread}"
    return f"group {logs['group']}"


def run_jobs(arguments: argparse.Namespace) -> int:
    params = {"state": arguments.state, "model": arguments.model, "limit": arguments.limit}
    listing = client_for(arguments).json("GET", "/v1/jobs", params=params)["jobs"]
    table = Table("id", "model", "state", "epoch", "device", "created", "metrics")
    for job in listing:
        progress = job["progress"]
        epoch = f"{progress['epoch']}/{progress['epochs']}" if progress.get("epochs") else ""
        # Where it ran, or, not started yet, the queue it waits on (a `gpu`
        # job waits there until a GPU worker is online).
        device = job.get("device") or (f"waits on {job['queue']}" if job.get("queue") else "")
        table.add_row(job["id"], job["model"], job["state"], epoch, device, job["created_at"],
                      _logs(job.get("metrics") or {}))  # fmt: skip
    out.print(table)
    return 0


def run_cancel(arguments: argparse.Namespace) -> int:
    job = client_for(arguments).json("POST", f"/v1/jobs/{arguments.job}:cancel")
    console.print(f"job {job['id']}: {job['state']}")
    return 0
