"""JobStore is its parts' methods under one name: each of its methods takes
what the part's takes, so the facade cannot drift from the part it calls."""

from __future__ import annotations

import inspect

import pytest

from models.jobs.dispatch import Dispatch
from models.jobs.leases import Leases
from models.jobs.listing import Listing
from models.jobs.migration import Migration
from models.jobs.records import JobRecords
from models.jobs.retention import Retention
from models.jobs.store import JobStore
from models.jobs.totals import TrainingTotals
from models.jobs.transitions import Transitions

# In the order a name is looked for: `update` is Transitions' (it fences a
# worker's write, and leaves the others to JobRecords.update).
PARTS = (Transitions, Leases, Dispatch, Listing, TrainingTotals, Retention, Migration, JobRecords)
# What the parts offer each other only (Listing reads whole records).
BETWEEN_PARTS = {"read"}
METHODS = sorted(name for name, _ in inspect.getmembers(JobStore, inspect.isfunction)
                 if not name.startswith("_"))  # fmt: skip


def owner(name: str) -> type:
    return next(part for part in PARTS if callable(getattr(part, name, None)))


@pytest.mark.parametrize("name", METHODS)
def test_each_method_takes_what_its_part_takes(name: str) -> None:
    part = getattr(owner(name), name)
    assert inspect.signature(getattr(JobStore, name)) == inspect.signature(part)


def test_every_public_method_of_a_part_is_the_stores() -> None:
    public = {name for part in PARTS for name, _ in inspect.getmembers(part, inspect.isfunction)
              if not name.startswith("_")}  # fmt: skip
    assert public - BETWEEN_PARTS == set(METHODS)
