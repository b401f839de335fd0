"""`fitserve serve` and `fitserve worker`: the service's processes started
from the one command line, as `make run` starts them. The imports wait
inside each command, so the other commands never load the API or Keras."""

from __future__ import annotations

import argparse


def run_serve(arguments: argparse.Namespace) -> int:
    from service.main import main as serve

    serve([])
    return 0


def run_worker(arguments: argparse.Namespace) -> int:
    if arguments.supervised:
        from worker.supervisor import main as supervise

        return supervise([])
    from worker.main import main as work

    work([])
    return 0
