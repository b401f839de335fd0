"""The prediction log's objects in the store (a folder and a SeaweedFS bucket):
read back oldest first across objects, writers and hours, paged with `next`
cursors that lose and repeat nothing, within a bounded amount of work per
call; expired hours deleted."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from models.storage import prediction_records
from models.storage.blobs import Blobs
from models.storage.prediction_records import PredictionRecords, hour_folder, parse_since, rfc3339

HOUR_MS = 3_600_000
NOW_MS = 1_796_000_000_000  # 2026-11-30T...: a fixed "now" for every read
WEEK_S = 7 * 86400


def write(records: PredictionRecords, writer: str, times_ms: list[int], model: str = "m") -> None:
    """One object of `writer` holding a record per time (all in one hour)."""
    lines = b"".join(
        orjson.dumps({"time": rfc3339(ms), "model": model, "writer": writer, "ms": ms}) + b"\n"
        for ms in times_ms
    )
    write.sequence = getattr(write, "sequence", 0) + 1  # type: ignore[attr-defined]
    records.write(model, hour_folder(times_ms[0]), min(times_ms), max(times_ms),
                  f"{writer}-1-{write.sequence}", lines)  # type: ignore[attr-defined]  # fmt: skip


def read_all(records: PredictionRecords, since: str, limit: int) -> list[list[dict[str, Any]]]:
    """Every page from `since`, following `next` until it is null."""
    pages = []
    position = parse_since(since)
    for _ in range(1000):
        page, following = records.read("m", position, limit, now=NOW_MS / 1000)
        pages.append(page)
        if following is None:
            return pages
        position = parse_since(following)
    raise AssertionError("next never became null")


def test_records_come_back_oldest_first_across_writers_and_hours(blobs: Blobs) -> None:
    records = PredictionRecords(blobs, WEEK_S)
    start = NOW_MS - 2 * HOUR_MS - NOW_MS % HOUR_MS  # the start of the hour two hours ago
    # Two processes whose objects overlap in time, an object in the next hour,
    # and two records at the same millisecond in different objects.
    write(records, "a", [start + 10, start + 30, start + 50])
    write(records, "b", [start + 20, start + 30, start + 60])
    write(records, "a", [start + HOUR_MS + 5, start + HOUR_MS + 7])
    write(records, "b", [start - 1])  # before `since`: never returned

    pages = read_all(records, rfc3339(start), limit=2)

    got = [(record["ms"], record["writer"]) for page in pages for record in page]
    assert [ms - start for ms, _ in got] == [10, 20, 30, 30, 50, 60, HOUR_MS + 5, HOUR_MS + 7]
    assert sorted(got) == sorted(set(got))  # nothing twice
    assert all(len(page) <= 2 for page in pages) and len(pages[0]) == 2


def test_a_page_cut_short_by_the_objects_budget_still_loses_nothing(
    blobs: Blobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prediction_records, "MAX_OBJECTS_PER_CALL", 2)
    records = PredictionRecords(blobs, WEEK_S)
    start = NOW_MS - HOUR_MS - NOW_MS % HOUR_MS
    for writer in range(5):  # five overlapping objects, more than one call reads
        write(records, f"w{writer}", [start + writer, start + 100 + writer])

    pages = read_all(records, rfc3339(start), limit=100)

    got = [record["ms"] - start for page in pages for record in page]
    assert got == [0, 1, 2, 3, 4, 100, 101, 102, 103, 104]
    assert len(pages) > 1  # each call read at most two objects


def test_empty_hours_are_listed_within_a_budget_per_call(blobs: Blobs) -> None:
    records = PredictionRecords(blobs, WEEK_S)
    recent = NOW_MS - 10
    write(records, "a", [recent])
    old = NOW_MS - 5 * 86400 * 1000  # five days of empty hours before the record

    pages = read_all(records, rfc3339(old), limit=10)

    assert [record["ms"] for page in pages for record in page] == [recent]
    # 120 hours, at most MAX_HOURS_PER_CALL listed per call: empty pages with a cursor between.
    assert len(pages) >= 120 // prediction_records.MAX_HOURS_PER_CALL


def test_since_defaults_nowhere_older_than_the_retention(blobs: Blobs) -> None:
    records = PredictionRecords(blobs, retention_s=3600)
    write(records, "a", [NOW_MS - 10 * HOUR_MS])  # expired, not yet swept
    write(records, "a", [NOW_MS - 60_000])

    page, following = records.read("m", parse_since("1970-01-01T00:00:00Z"), 10,
                                    now=NOW_MS / 1000)  # fmt: skip

    assert [record["ms"] for record in page] == [NOW_MS - 60_000]
    assert following is None


def test_expired_hours_are_deleted_and_recent_ones_kept(blobs: Blobs) -> None:
    records = PredictionRecords(blobs, retention_s=2 * 3600)
    write(records, "a", [NOW_MS - 5 * HOUR_MS], model="m")
    write(records, "a", [NOW_MS - 4 * HOUR_MS], model="other")
    write(records, "a", [NOW_MS - HOUR_MS], model="m")

    removed = records.forget_expired(now=NOW_MS / 1000)

    assert removed == 2
    assert [key.split("/")[2] for key in blobs.keys("predictions/")] == [
        hour_folder(NOW_MS - HOUR_MS)
    ]


@pytest.mark.parametrize(
    "value",
    ["yesterday", "2026-11-30", "2026-11-30T10:00:00", "2026-11-30T10:00:00Z~x~1",
     "2026-11-30T10:00:00Z~0000000000001-0000000000002-h-1-1.jsonl~one"],
)  # fmt: skip
def test_since_is_a_time_with_its_offset_or_a_cursor(value: str) -> None:
    with pytest.raises(ValueError, match="since"):
        parse_since(value)


def test_since_is_read_in_any_offset_and_to_the_millisecond() -> None:
    assert parse_since("2026-11-30T12:00:00.1234+01:00") == ("2026-11-30T11:00:00.123Z", "", -1)
    cursor = "2026-11-30T11:00:00.123Z~0000000000001-0000000000002-h-1-1.jsonl~7"
    assert parse_since(cursor) == (
        "2026-11-30T11:00:00.123Z",
        "0000000000001-0000000000002-h-1-1.jsonl",
        7,
    )
