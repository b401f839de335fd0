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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

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
    train.add_argument("spec", type=Path, help='a spec file: the spec, or {"model", "spec"}')
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
    job = client.submit(model, spec, dataset)
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
    return _summary(job)


def _show(event: Event, job: dict[str, Any], progress: Progress, bar: TaskID) -> dict[str, Any]:
    if event.name == "snapshot":
        job = event.data
        done, epochs = job["progress"]["epoch"] or 0, job["progress"]["epochs"] or 1
        progress.update(bar, description=job["state"], total=epochs, completed=done,
                        logs=_logs(job["metrics"]))  # fmt: skip
    elif event.name == "epoch":
        data = event.data
        eta = "-" if data["eta_s"] is None else f"{data['eta_s']:.1f}s"
        progress.update(bar, description="running", total=data["epochs"],
                        completed=data["epoch"], logs=_logs(data["logs"]), eta=eta)  # fmt: skip
    elif event.name == "state":
        job = {**job, **event.data}
        progress.update(bar, description=event.data["state"])
        if event.data["state"] == "succeeded":
            progress.update(bar, completed=progress.tasks[0].total, eta="0s")
    return job


def _summary(job: dict[str, Any]) -> int:
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
