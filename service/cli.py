"""`fitserve`: train, follow, list, predict and cancel from a terminal, and
start the service's parts.

    fitserve train examples/iris.json examples/data/iris.csv --model iris
    fitserve jobs | fitserve models | fitserve predict iris rows.csv | fitserve cancel ID
    fitserve label iris stable 3 | fitserve export iris 3 --format onnx | fitserve predictions iris
    fitserve evaluate iris stable --dataset held-out.csv
    fitserve serve | fitserve worker [--supervised]

The server and key come from --url/--key, else FITSERVE_URL and
FITSERVE_API_KEY, else http://127.0.0.1:8000 and the key `make run` keeps in
var/api-key. Exit status: 0 done, 1 the job failed or was cancelled, 2 the
request was refused (the API's message is printed), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeGuard

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table

from models.ids import is_dataset_id
from models.jobs.store import FINAL_STATES, STATES
from service.client import ApiError, Client, ClientSettings, Event

PREDICT_TYPES = {".csv": "text/csv", ".json": "application/json", ".npy": "application/x-npy"}
EXPORT_FORMATS = ("keras", "saved_model", "onnx")
# The most records one page of the prediction log holds (the API's limit).
PREDICTIONS_PAGE = 1000
PARAM_WIDTH = 20  # a search's leaderboard cuts a longer parameter value (a string, a list)

console = Console(stderr=True)  # progress and messages; results go to stdout
out = Console()


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        return int(arguments.run(arguments))
    except ApiError as exc:
        console.print(f"[red]error[/red] {exc.message}" + (f" (HTTP {exc.status})"
                                                          if exc.status else ""))  # fmt: skip
        return 2
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fitserve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="the API (env FITSERVE_URL; default http://127.0.0.1:8000)")
    parser.add_argument("--key", help="an API key (env FITSERVE_API_KEY, or var/api-key)")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, run: Callable[[argparse.Namespace], int], summary: str) -> Any:
        sub = commands.add_parser(name, help=summary, description=summary)
        sub.set_defaults(run=run)
        return sub

    train = command("train", _train, "Upload a dataset, train a model on it and follow the job.")
    train.add_argument("spec", type=Path,
                       help='a spec file: the spec, or {"model", "spec", "search"}')  # fmt: skip
    train.add_argument("data", help="a .csv, .json or .npz file, or the id of an uploaded dataset")
    train.add_argument("--model", help="the model's name (default: the spec file's 'model')")
    train.add_argument("--target", help="the CSV column holding the labels")
    train.add_argument("--detach", action="store_true", help="submit, print the job, return")
    watch = command("watch", _watch, "Follow a job until it ends.")
    watch.add_argument("job")
    jobs = command("jobs", _jobs, "List jobs, newest first.")
    jobs.add_argument("--state", choices=STATES)
    jobs.add_argument("--model")
    jobs.add_argument("--limit", type=int, default=20)
    command("models", _models, "List models and their versions.")
    predict = command("predict", _predict, "Predict the samples in a CSV, NPY or JSON file.")
    predict.add_argument("model")
    predict.add_argument("file", type=Path)
    predict.add_argument("--version", type=int)
    predict.add_argument("--output", "-o", type=Path,
                         help="write the predictions to this .csv, .npy or .json file")  # fmt: skip
    evaluate = command("evaluate", _evaluate,
                       "Loss and compiled metrics of a version on a labelled dataset.")  # fmt: skip
    evaluate.add_argument("model")
    evaluate.add_argument(
        "version", nargs="?", help="a version number or a label (default: latest)"
    )
    evaluate.add_argument(
        "--dataset", required=True, help="an uploaded dataset's id, or a .csv, .json or .npz file"
    )
    evaluate.add_argument("--target", help="the CSV column holding the labels")
    evaluate.add_argument("--json", action="store_true", help="print the answer as JSON")
    label = command("label", _label, "List a model's labels, or point one at a version.")
    label.add_argument("model")
    label.add_argument("label", nargs="?", help="the label (stable, canary, ...)")
    label.add_argument("version", nargs="?", type=int, help="the version it is to point at")
    label.add_argument("--delete", action="store_true", help="delete the label")
    export = command("export", _export, "Download a version: .keras, a SavedModel zip, or ONNX.")
    export.add_argument("model")
    export.add_argument("version", type=int)
    export.add_argument("--format", choices=EXPORT_FORMATS, default="keras")
    export.add_argument("--output", "-o", type=Path,
                        help="the file to write (default: the server's name, here)")  # fmt: skip
    logged = command("predictions", _predictions, "Read back a model's sampled prediction log.")
    logged.add_argument("model")
    logged.add_argument("--since", help="an RFC 3339 time (default: the server's, an hour ago)")
    logged.add_argument("--limit", type=int, default=100, help="at most this many records")
    logged.add_argument("--json", action="store_true", help="print JSON lines, not a table")
    cancel = command("cancel", _cancel, "Cancel a queued or running job.")
    cancel.add_argument("job")
    command("serve", _serve, "Run the API (granian), as `make run` does.")
    worker = command("worker", _worker, "Run a training worker.")
    worker.add_argument("--supervised", action="store_true",
                        help="start it again whenever it dies, as `make run` does")  # fmt: skip
    return parser


def _client(arguments: argparse.Namespace) -> Client:
    settings = ClientSettings()
    return Client(arguments.url or settings.url, arguments.key or settings.key())


def _train(arguments: argparse.Namespace) -> int:
    client = _client(arguments)
    document = json.loads(arguments.spec.read_text())
    spec = document.get("spec", document)
    model = arguments.model or document.get("model")
    if not model:
        raise ApiError(0, "Name the model: --model NAME (the spec file has no 'model').")
    dataset = _dataset_id(client, arguments.data, arguments.target)
    job = client.submit(model, spec, dataset, search=document.get("search"))
    console.print(f"job {job['id']}: training {model!r}")
    if arguments.detach:
        out.print_json(data=job)
        return 0
    return _follow(client, job["id"])


def _dataset_id(client: Client, data: str, target: str | None) -> str:
    """`data` as it is when it is a dataset id (and no such file), else the
    id the file gets when uploaded."""
    if is_dataset_id(data) and not Path(data).exists():
        return data
    record = client.upload(Path(data), target)
    console.print(f"dataset {record['id']}: {record['rows']} rows")
    return str(record["id"])


def _watch(arguments: argparse.Namespace) -> int:
    return _follow(_client(arguments), arguments.job)


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
            spread = _number(min(values)) + (f"..{_number(max(values))}" if len(values) > 1 else "")
            return f"group {logs['group']}  {name} {spread}"
    return f"group {logs['group']}"


# ---- a search's trials, as a leaderboard ---------------------------------------


# The leaderboard's rows at most: the best of a large search, not a screenful per trial.
LEADERBOARD_ROWS = 30


def leaderboard(job: Mapping[str, Any]) -> str:
    """A finished search or k-fold job as plain text ("" for any other job).

    A search: its trials best first by the `rank` the API gives each (by the
    ranking metric: mean ± std over the folds with `fit.folds`), the best one
    marked; then, with folds, the best trial fold by fold. A k-fold job
    without a search: each metric fold by fold.
    """
    trials = job.get("trials") or []
    if not trials:
        return ""
    metric, mode = ranking_of(job)
    best = job.get("best") or {}
    if not job.get("search"):
        folds = trials[0].get("folds") or best.get("folds") or {}
        return _fold_table(folds, f"{_fold_count(folds)}-fold validation:") if folds else ""
    paths = sorted({path for trial in trials for path in trial.get("params") or {}})
    labels = short_labels(paths)
    header = ["", "rank", "trial", *(labels[path] for path in paths), metric, "state", "epochs"]
    order = by_rank(trials)
    hidden = max(len(order) - LEADERBOARD_ROWS, 0)
    order = order[:LEADERBOARD_ROWS]  # a search of a thousand trials is read from its record
    scores = _on_the_sign([_measure(trial, metric) for trial in order])
    rows = []
    for trial, score in zip(order, scores, strict=True):
        params = trial.get("params") or {}
        rank = trial.get("rank")
        rows.append([
            "*" if trial["index"] == best.get("index") else "",
            "-" if rank is None else str(rank), str(trial["index"]),
            *(_param(params[path]) if path in params else "-" for path in paths),
            score, str(trial.get("state") or "-"), str(trial.get("epochs") or 0),
        ])  # fmt: skip
    numeric = {1, 2, len(header) - 1}
    for column, path in enumerate(paths, start=3):
        if all(_is_number((trial.get("params") or {}).get(path, 0)) for trial in trials):
            numeric.add(column)
    direction = "lowest" if mode == "min" else "highest"
    of_folds = " (the folds' mean)" if any(trial.get("folds") for trial in trials) else ""
    lines = [f"{len(trials)} trials, ranked by {metric}{of_folds}, {direction} first:"]
    lines += _aligned([header, *rows], numeric)
    if hidden:
        lines.append(f"... and {hidden} more trials: every one is in GET /v1/jobs/{job['id']}")
    if best:
        lines.append(f"* best: trial {best['index']}, the one published")
    if best.get("folds"):
        title = f"Trial {best['index']}, {_fold_count(best['folds'])}-fold validation:"
        lines += ["", _fold_table(best["folds"], title)]
    return "\n".join(lines)


def ranking_of(job: Mapping[str, Any]) -> tuple[str, str]:
    """(metric, "min" or "max"): the job's `ranking`, else what its search asks
    for (still queued), else val_loss, lowest first (a k-fold job's)."""
    ranking = job.get("ranking") or {}
    search = job.get("search") or {}
    metric = ranking.get("metric") or search.get("metric") or "val_loss"
    return metric, ranking.get("mode") or search.get("mode") or "min"


def by_rank(trials: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The trials in the order of the `rank` the API gives each (1 the best),
    then those it leaves unranked (null), by index."""
    return sorted(trials, key=lambda trial: (trial.get("rank") is None, trial.get("rank") or 0,
                                             trial["index"]))  # fmt: skip


def short_labels(paths: Sequence[str]) -> dict[str, str]:
    """Each dotted path's last segment, or as many more as tell it apart from
    the others: `layers.0.units` and `layers.1.units` are `0.units`, `1.units`."""
    labels = {}
    for path in paths:
        parts = path.split(".")
        for size in range(1, len(parts) + 1):
            label = ".".join(parts[-size:])
            if not any(other != path and (other == label or other.endswith("." + label))
                       for other in paths):  # fmt: skip
                break
        labels[path] = label
    return labels


def _fold_table(folds: Mapping[str, Mapping[str, Any]], title: str) -> str:
    """Each metric's mean ± std over the folds, then its value on each fold."""
    count = _fold_count(folds)
    header = ["metric", "mean ± std", *(f"fold {j}" for j in range(1, count + 1))]
    scores = _on_the_sign([_mean_std(summary) for summary in folds.values()])
    rows = []
    for (name, summary), score in zip(folds.items(), scores, strict=True):
        values = [_number(value) for value in summary.get("values") or []]
        rows.append([name, score, *values, *[""] * (count - len(values))])
    return "\n".join([title, *_aligned([header, *rows], set(range(2, count + 2)))])


def _fold_count(folds: Mapping[str, Mapping[str, Any]]) -> int:
    return max((len(summary.get("values") or []) for summary in folds.values()), default=0)


def _measure(trial: Mapping[str, Any], metric: str) -> tuple[str, str | None]:
    """(value, None); with folds, (mean, std)."""
    summary = (trial.get("folds") or {}).get(metric)
    if summary:
        return _mean_std(summary)
    return _number((trial.get("metrics") or {}).get(metric)), None


def _mean_std(summary: Mapping[str, Any]) -> tuple[str, str]:
    return _number(summary.get("mean")), _number(summary.get("std"))


def _on_the_sign(measures: Sequence[tuple[str, str | None]]) -> list[str]:
    """Cells of `mean ± std` with every ± in one column: the means right-aligned."""
    width = max((len(value) for value, _ in measures), default=0)
    return [value.rjust(width) + ("" if std is None else f" ± {std}") for value, std in measures]


def _number(value: Any) -> str:
    return f"{value:.4g}" if _is_number(value) else "-"


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _param(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = value if isinstance(value, str) else json.dumps(value)
    text = " ".join(text.split())  # a newline in a string choice would break the row
    return text if len(text) <= PARAM_WIDTH else text[: PARAM_WIDTH - 3] + "..."


def _aligned(rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    """Rows of cells as lines of columns two spaces apart; numbers right-aligned."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return [
        "  ".join(cell.rjust(width) if column in right else cell.ljust(width)
                  for column, (cell, width) in enumerate(zip(row, widths, strict=True))).rstrip()
        for row in rows
    ]  # fmt: skip


def _jobs(arguments: argparse.Namespace) -> int:
    params = {"state": arguments.state, "model": arguments.model, "limit": arguments.limit}
    listing = _client(arguments).json("GET", "/v1/jobs", params=params)["jobs"]
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


def _models(arguments: argparse.Namespace) -> int:
    listing = _client(arguments).json("GET", "/v1/models")["models"]
    table = Table("name", "task", "latest", "versions")
    for model in listing:
        table.add_row(model["name"], model["task"], str(model["latest_version"]),
                      ", ".join(map(str, model["versions"])))  # fmt: skip
    out.print(table)
    return 0


def _predict(arguments: argparse.Namespace) -> int:
    media_type = PREDICT_TYPES.get(arguments.file.suffix.lower())
    if media_type is None:
        raise ApiError(0, f"Samples are .csv, .npy or .json files. Received: {arguments.file}")
    path = f"/v1/models/{arguments.model}"
    if arguments.version is not None:
        path += f"/versions/{arguments.version}"
    output = arguments.output
    accept = PREDICT_TYPES.get(output.suffix.lower(), "") if output else "application/json"
    if output and not accept:
        raise ApiError(0, f"Predictions are written as .csv, .npy or .json. Received: {output}")
    response = _client(arguments).request(
        "POST", f"{path}:predict", data=arguments.file.read_bytes(),
        headers={"Content-Type": media_type, "Accept": accept},
    )  # fmt: skip
    if output:
        output.write_bytes(response.content)
        console.print(f"wrote {output}")
        return 0
    answer = response.json()
    labels = answer.get("labels")
    table = Table("#", "prediction", *(["label"] if labels is not None else []))
    for index, prediction in enumerate(answer["predictions"]):
        values = ", ".join(f"{value:.4g}" for value in prediction)
        table.add_row(str(index), values, *([str(labels[index])] if labels is not None else []))
    out.print(table)
    return 0


def _evaluate(arguments: argparse.Namespace) -> int:
    client = _client(arguments)
    dataset = _dataset_id(client, arguments.dataset, arguments.target)
    answer = client.evaluate(arguments.model, dataset, arguments.version)
    if arguments.json:
        out.print_json(data=answer)
        return 0
    table = Table("metric", "value")
    for name, value in answer["metrics"].items():
        table.add_row(name, f"{value:.6g}")
    out.print(table)
    console.print(f"{answer['rows']:,} rows of dataset {dataset}")
    return 0


def _label(arguments: argparse.Namespace) -> int:
    client = _client(arguments)
    path = f"/v1/models/{arguments.model}/labels"
    if arguments.delete or arguments.version is not None:
        if arguments.label is None:
            raise ApiError(0, "Name the label: fitserve label MODEL LABEL VERSION (or --delete).")
        if arguments.delete and arguments.version is not None:
            raise ApiError(0, "Either a version to point the label at or --delete, not both.")
        if arguments.delete:
            client.request("DELETE", f"{path}/{arguments.label}")
            console.print(f"deleted label {arguments.label!r} of {arguments.model}")
            return 0
        moved = client.json("PUT", f"{path}/{arguments.label}",
                            json={"version": arguments.version})  # fmt: skip
        previous = moved.get("previous")
        was = f" (was {previous})" if previous not in (None, moved["version"]) else ""
        console.print(f"{arguments.model}: {arguments.label} -> version {moved['version']}{was}")
        return 0
    if arguments.label is not None:  # one label, with its history
        shown = client.json("GET", f"{path}/{arguments.label}")
        out.print(f"{arguments.label} -> version {shown['version']}")
        table = Table("time", "from", "to", "role")
        for move in shown["history"]:
            table.add_row(move["time"], _version(move["from"]), _version(move["to"]),
                          str(move["role"]))  # fmt: skip
        out.print(table)
        return 0
    table = Table("label", "version")
    for name, version in client.json("GET", path)["labels"].items():
        table.add_row(name, str(version))
    out.print(table)
    return 0


def _version(version: int | None) -> str:
    return "-" if version is None else str(version)


def _export(arguments: argparse.Namespace) -> int:
    written = _client(arguments).download(
        f"/v1/models/{arguments.model}/versions/{arguments.version}/export", arguments.output,
        params={"format": arguments.format},
    )  # fmt: skip
    console.print(f"wrote {written} ({written.stat().st_size:,} bytes)")
    return 0


def _predictions(arguments: argparse.Namespace) -> int:
    """Pages of the log (following `next`) until `--limit` records or the end."""
    client = _client(arguments)
    path = f"/v1/models/{arguments.model}/predictions"
    since, left = arguments.since, arguments.limit
    records: list[dict[str, Any]] = []
    while left > 0:
        params: dict[str, Any] = {"limit": min(left, PREDICTIONS_PAGE)}
        if since:
            params["since"] = since
        page = client.json("GET", path, params=params)
        records += page["records"][:left]
        left -= len(page["records"])
        # A page may be empty and still name a `next`: the server lists at
        # most two days of hour folders a call, so a `since` long ago takes
        # several calls to reach the first record. The cursor only moves on.
        following = page.get("next")
        if not following or following == since:
            break
        since = following
    if arguments.json:
        for record in records:
            sys.stdout.write(json.dumps(record) + "\n")
        return 0
    table = Table("time", "version", "latency ms", "rows", "labels", "outputs")
    for record in records:
        outputs = record.get("outputs") or []
        labels = record.get("labels")
        table.add_row(str(record.get("time")), str(record.get("version")),
                      f"{record.get('latency_ms', 0):.3g}", str(len(outputs)),
                      _short(labels) if labels is not None else "", _short(outputs))  # fmt: skip
    out.print(table)
    return 0


def _short(value: Any, most: int = 60) -> str:
    text = json.dumps(value)
    return text if len(text) <= most else text[: most - 3] + "..."


def _cancel(arguments: argparse.Namespace) -> int:
    job = _client(arguments).json("POST", f"/v1/jobs/{arguments.job}:cancel")
    console.print(f"job {job['id']}: {job['state']}")
    return 0


def _serve(arguments: argparse.Namespace) -> int:
    from service.main import main as serve

    serve([])
    return 0


def _worker(arguments: argparse.Namespace) -> int:
    if arguments.supervised:
        from worker.supervisor import main as supervise

        return supervise([])
    from worker.main import main as work

    work([])
    return 0


if __name__ == "__main__":
    sys.exit(main())
