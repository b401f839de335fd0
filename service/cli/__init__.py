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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from models.jobs.store import STATES
from service.cli.common import console
from service.cli.jobs import run_cancel, run_jobs, run_train, run_watch
from service.cli.models import (
    EXPORT_FORMATS,
    run_evaluate,
    run_export,
    run_label,
    run_models,
    run_predict,
    run_predictions,
)
from service.cli.operators import run_serve, run_worker
from service.client import ApiError


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


# The commands live in modules by what they show (jobs, models, search,
# operators): here, only the parser that names them.
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fitserve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="the API (env FITSERVE_URL; default http://127.0.0.1:8000)")
    parser.add_argument("--key", help="an API key (env FITSERVE_API_KEY, or var/api-key)")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, run: Callable[[argparse.Namespace], int], summary: str) -> Any:
        sub = commands.add_parser(name, help=summary, description=summary)
        sub.set_defaults(run=run)
        return sub

    train = command("train", run_train, "Upload a dataset, train a model on it and follow the job.")
    train.add_argument("spec", type=Path,
                       help='a spec file: the spec, or {"model", "spec", "search"}')  # fmt: skip
    train.add_argument("data", help="a .csv, .json or .npz file, or the id of an uploaded dataset")
    train.add_argument("--model", help="the model's name (default: the spec file's 'model')")
    train.add_argument("--target", help="the CSV column holding the labels")
    train.add_argument("--detach", action="store_true", help="submit, print the job, return")
    watch = command("watch", run_watch, "Follow a job until it ends.")
    watch.add_argument("job")
    jobs = command("jobs", run_jobs, "List jobs, newest first.")
    jobs.add_argument("--state", choices=STATES)
    jobs.add_argument("--model")
    jobs.add_argument("--limit", type=int, default=20)
    command("models", run_models, "List models and their versions.")
    predict = command("predict", run_predict, "Predict the samples in a CSV, NPY or JSON file.")
    predict.add_argument("model")
    predict.add_argument("file", type=Path)
    predict.add_argument("--version", type=int)
    predict.add_argument("--output", "-o", type=Path,
                         help="write the predictions to this .csv, .npy or .json file")  # fmt: skip
    evaluate = command("evaluate", run_evaluate,
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
    label = command("label", run_label, "List a model's labels, or point one at a version.")
    label.add_argument("model")
    label.add_argument("label", nargs="?", help="the label (stable, canary, ...)")
    label.add_argument("version", nargs="?", type=int, help="the version it is to point at")
    label.add_argument("--delete", action="store_true", help="delete the label")
    export = command("export", run_export, "Download a version: .keras, a SavedModel zip, or ONNX.")
    export.add_argument("model")
    export.add_argument("version", type=int)
    export.add_argument("--format", choices=EXPORT_FORMATS, default="keras")
    export.add_argument("--output", "-o", type=Path,
                        help="the file to write (default: the server's name, here)")  # fmt: skip
    logged = command("predictions", run_predictions, "Read back a model's sampled prediction log.")
    logged.add_argument("model")
    logged.add_argument("--since", help="an RFC 3339 time (default: the server's, an hour ago)")
    logged.add_argument("--limit", type=int, default=100, help="at most this many records")
    logged.add_argument("--json", action="store_true", help="print JSON lines, not a table")
    cancel = command("cancel", run_cancel, "Cancel a queued or running job.")
    cancel.add_argument("job")
    command("serve", run_serve, "Run the API (granian), as `make run` does.")
    worker = command("worker", run_worker, "Run a training worker.")
    worker.add_argument("--supervised", action="store_true",
                        help="start it again whenever it dies, as `make run` does")  # fmt: skip
    return parser
