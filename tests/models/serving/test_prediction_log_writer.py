"""The prediction log's writer (models.serving.prediction_log_writer) on a real folder
store: records rotate by hour, a full queue drops and counts instead of
waiting, a stalled or failing store never reaches the caller, flush and
process exit write what is held, large batches are cut to their first rows."""

from __future__ import annotations

import functools
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from models.serving.prediction_log_writer import PredictionLog
from models.settings import PredictionLog as PredictionLogSettings
from models.settings import Settings
from models.storage.blobs import FolderBlobs
from models.storage.prediction_records import PredictionRecords, parse_since

ROOT = Path(__file__).resolve().parents[3]
HOUR_S = 3600.0
START_S = 1_796_000_000 // 3600 * 3600.0  # the start of an hour


def make_log(blobs: Any, **options: Any) -> tuple[PredictionLog, Counter[str]]:
    counts: Counter[str] = Counter()

    def count(outcome: str, records: int) -> None:
        counts[outcome] += records

    settings = PredictionLogSettings(sample=1.0, **options)
    return PredictionLog(PredictionRecords(blobs, settings.retention_s), settings, count), counts


def offer(prediction_log: PredictionLog, rows: int = 1, model: str = "m") -> None:
    x = np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)
    prediction_log.offer(model, 2, x, x[:, :1] * 2, ["yes"] * rows, 0.25, "predict", "v1")


def read(blobs: Any, since_s: float, model: str = "m") -> list[dict[str, Any]]:
    records = PredictionRecords(blobs, 86400 * 7)
    page, _ = records.read(model, parse_since("2026-11-29T00:00:00Z"), 1000, now=since_s)
    return page


def test_records_are_written_by_hour_with_every_field(tmp_path: Path) -> None:
    blobs = FolderBlobs(tmp_path)
    prediction_log, counts = make_log(blobs)
    for moment in (START_S + 10, START_S + 20, START_S + HOUR_S + 5):
        prediction_log.clock = functools.partial(float, moment)
        offer(prediction_log)

    prediction_log.close()

    # One object per hour: the records of an hour written together.
    hours = sorted(key.split("/")[2] for key in blobs.keys("predictions/m/"))
    assert hours == ["2026-11-30T00", "2026-11-30T01"]
    records = read(blobs, START_S + 2 * HOUR_S)
    assert [record["time"] for record in records] == [
        "2026-11-30T00:00:10.000Z", "2026-11-30T00:00:20.000Z", "2026-11-30T01:00:05.000Z"
    ]  # fmt: skip
    assert records[0] == {
        "time": "2026-11-30T00:00:10.000Z", "model": "m", "version": 2, "protocol": "v1",
        "role": "predict", "latency_ms": 0.25, "rows": 1, "inputs": [[0.0, 1.0, 2.0]],
        "outputs": [[0.0]], "labels": ["yes"],
    }  # fmt: skip
    assert counts == {"written": 3}


def test_a_large_batch_keeps_its_first_rows_and_says_how_many(tmp_path: Path) -> None:
    blobs = FolderBlobs(tmp_path)
    prediction_log, _ = make_log(blobs, max_rows=5)
    prediction_log.clock = lambda: START_S
    offer(prediction_log, rows=100_000)
    prediction_log.close()

    (record,) = read(blobs, START_S + 1)
    assert record["rows"] == 100_000
    assert len(record["inputs"]) == len(record["outputs"]) == len(record["labels"]) == 5
    assert record["inputs"][4] == [12.0, 13.0, 14.0]


class StalledStore(FolderBlobs):
    """A store whose writes wait until released: a store that hangs."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.entered = threading.Event()
        self.release = threading.Event()

    def put(self, key: str, data: bytes) -> None:
        self.entered.set()
        assert self.release.wait(60)
        super().put(key, data)


def test_a_full_queue_drops_and_counts_and_never_waits(tmp_path: Path) -> None:
    blobs = StalledStore(tmp_path)
    prediction_log, counts = make_log(blobs, max_queued=2)
    prediction_log.clock = lambda: START_S
    offer(prediction_log)
    flushing = threading.Thread(target=prediction_log.flush)
    flushing.start()  # the writer is now stuck in the store with the first record
    assert blobs.entered.wait(60)

    for _ in range(5):
        offer(prediction_log)  # returns at once: the queue takes two, drops three

    assert prediction_log.dropped == 3 and counts["dropped"] == 3
    blobs.release.set()
    flushing.join()
    prediction_log.close()
    assert len(read(blobs, START_S + 1)) == 3
    assert counts["written"] == 3


class BrokenStore(FolderBlobs):
    def put(self, key: str, data: bytes) -> None:
        raise OSError("the disk is full")


def test_a_failing_store_loses_the_records_quietly(tmp_path: Path) -> None:
    prediction_log, counts = make_log(BrokenStore(tmp_path))
    offer(prediction_log)
    offer(prediction_log, model="other")

    prediction_log.close()  # raises nothing

    assert counts == {"failed": 2}


def test_a_process_writes_what_it_holds_when_it_exits(tmp_path: Path) -> None:
    # flush_s of an hour: only the exit can have written it.
    script = f"""
import numpy as np
from models.serving.prediction_log_writer import PredictionLog
from models.settings import PredictionLog as Options
from models.storage.blobs import FolderBlobs
from models.storage.prediction_records import PredictionRecords
options = Options(sample=1.0, flush_s=3600)
log = PredictionLog(PredictionRecords(FolderBlobs({str(tmp_path)!r}), 3600), options)
x = np.ones((1, 2), np.float32)
log.offer("m", 1, x, x, None, None, "full", "v2")
"""
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=120)

    (key,) = FolderBlobs(tmp_path).keys("predictions/m/")
    assert b'"protocol":"v2"' in FolderBlobs(tmp_path).get(key)


def test_the_settings_name_the_sample(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("FITSERVE_PREDICTION_LOG__SAMPLE", "0.25")
    settings = Settings(data_dir=tmp_path)
    assert settings.prediction_log.sample == 0.25
