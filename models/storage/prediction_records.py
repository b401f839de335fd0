"""The prediction log in the store: JSON lines, one object per writer and flush.

    predictions/<model>/<YYYY-MM-DDTHH>/<first>-<last>-<host>-<pid>-<seq>.jsonl

The hour folder is the records' hour (UTC); `first` and `last` are the times
of the object's oldest and newest record in epoch milliseconds (13 digits:
they sort as they compare), so one listing picks the objects a reader needs.
Objects are written whole (a bucket has no append). Records are read oldest
first, by (time, object, line); a cursor `<time>~<object>~<line>` names the
last one a page returned. A call lists at most MAX_HOURS_PER_CALL hour
folders and reads at most MAX_OBJECTS_PER_CALL objects (more only when more
overlap its starting time); a page cut short by them returns a cursor.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from models.storage.blobs import Blobs

PREFIX = "predictions/"
HOUR_FORMAT = "%Y-%m-%dT%H"
OBJECT_NAME = re.compile(r"(\d{13})-(\d{13})-[A-Za-z0-9_-]+-\d+-\d+\.jsonl")
# A writer starts a new object past this size, so a reader's work stays bounded.
MAX_OBJECT_BYTES = 2 << 20
MAX_OBJECTS_PER_CALL = 16
MAX_HOURS_PER_CALL = 48

# (time as RFC 3339 with milliseconds, object name, line): a record's place.
# A `since` time is the position just before its first record: ("...", "", -1).
Position = tuple[str, str, int]


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = timedelta(milliseconds=1)


def rfc3339(milliseconds: int) -> str:
    """`2026-11-30T23:01:02.345Z`: fixed width, so these strings sort as times do.
    From integer milliseconds: float seconds would round some to the one before."""
    moment = EPOCH + milliseconds * MILLISECOND
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{milliseconds % 1000:03d}Z"


def milliseconds_of(moment: datetime) -> int:
    return (moment - EPOCH) // MILLISECOND


def hour_folder(milliseconds: int) -> str:
    return (EPOCH + milliseconds * MILLISECOND).strftime(HOUR_FORMAT)


def parse_since(value: str) -> Position:
    """A `since` query value: an RFC 3339 time (with its offset) or a cursor
    (`next` of an earlier page). ValueError saying what was expected."""
    text, separator, rest = value.partition("~")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or "T" not in text.upper():
        raise ValueError(
            "since is an RFC 3339 time with its offset, e.g. 2026-11-30T23:00:00Z, or the "
            "`next` cursor of an earlier page"
        )
    # Within what 13 digits of milliseconds hold (1970 to 2286): the far past
    # and future mean "everything" and "nothing yet", and stay formattable.
    normalized = rfc3339(min(max(milliseconds_of(moment), 0), 10**13 - 1))
    if not separator:
        return normalized, "", -1
    name, _, line = rest.partition("~")
    # Line -1: just before the object's first record (a page cut short there).
    if not OBJECT_NAME.fullmatch(name) or not re.fullmatch(r"-1|[0-9]{1,9}", line):
        raise ValueError("since is not a cursor this API returned (<time>~<object>~<line>)")
    return normalized, name, int(line)


def cursor(position: Position) -> str:
    """The `next` of a page: a plain time when the position is one's start."""
    time_text, name, line = position
    return f"{time_text}~{name}~{line}" if name else time_text


class PredictionRecords:
    """Write, read and expire the prediction log's objects in `blobs`."""

    def __init__(self, blobs: Blobs, retention_s: float) -> None:
        self.blobs = blobs
        self.retention_s = retention_s

    def write(self, model: str, hour: str, first_ms: int, last_ms: int, tail: str,
              data: bytes) -> str:  # fmt: skip
        """Store one object of JSON lines; `tail` is `<host>-<pid>-<seq>`."""
        key = f"{PREFIX}{model}/{hour}/{first_ms:013d}-{last_ms:013d}-{tail}.jsonl"
        self.blobs.put(key, data)
        return key

    def read(self, model: str, after: Position, limit: int,
             now: float | None = None) -> tuple[list[dict[str, Any]], str | None]:  # fmt: skip
        """Up to `limit` records after `after`, oldest first, and the cursor of
        the next page (None when nothing more is stored yet)."""
        now_ms = int((time.time() if now is None else now) * 1000)
        # Nothing older than the retention is kept: start no earlier.
        oldest_ms = now_ms - int((self.retention_s + 3600) * 1000)
        if _milliseconds(after[0]) < oldest_ms:
            after = (rfc3339(oldest_ms), "", -1)
        hour = datetime.fromisoformat(after[0]).replace(minute=0, second=0, microsecond=0)
        last_hour = EPOCH + now_ms * MILLISECOND
        found: list[tuple[Position, dict[str, Any]]] = []
        budget = MAX_OBJECTS_PER_CALL
        for _ in range(MAX_HOURS_PER_CALL):
            if hour > last_hour:
                return _page(found, limit, None)  # everything stored was read
            stop, budget = self._read_hour(model, hour.strftime(HOUR_FORMAT), after, limit,
                                           found, budget)  # fmt: skip
            if stop is not None:  # enough found, or the objects' budget spent
                return _page([item for item in found if item[0] < stop], limit, stop)
            hour += timedelta(hours=1)
            if len(found) >= limit:  # later hours hold later records only
                return _page(found, limit, (rfc3339(milliseconds_of(hour)), "", -1))
        if hour > last_hour:
            return _page(found, limit, None)
        # As many hours listed as one call may: go on from the next one.
        return _page(found, limit, (rfc3339(milliseconds_of(hour)), "", -1))

    def _read_hour(self, model: str, hour: str, after: Position, limit: int,
                   found: list[tuple[Position, dict[str, Any]]],
                   budget: int) -> tuple[Position | None, int]:  # fmt: skip
        """Add the hour's records after `after` to `found` (sorted). Returns
        (the position before the first object left unread when more is there
        than `limit` or the budget allowed, else None; the budget left)."""
        folder = f"{PREFIX}{model}/{hour}/"
        objects = []
        after_ms = _milliseconds(after[0])
        for key in self.blobs.keys(folder):
            name = key[len(folder) :]
            match = OBJECT_NAME.fullmatch(name)
            if match and int(match[2]) >= after_ms:
                objects.append((int(match[1]), name))
        objects.sort()
        for first_ms, name in objects:
            # Every record of this object, and of those after it, is after `bound`.
            bound = (rfc3339(first_ms), name, -1)
            if len(found) >= limit and found[limit - 1][0] < bound:
                return bound, budget
            # Out of budget, once a record is sure to come back: the objects
            # that overlap `after` are read on every call (one per writing
            # process at most, about), and the page must move past them.
            if budget <= 0 and found and found[0][0] < bound:
                return bound, budget
            budget -= 1
            try:
                lines = self.blobs.get(folder + name).splitlines()
            except FileNotFoundError:  # expired meanwhile
                continue
            for number, line in enumerate(lines):
                record = orjson.loads(line)
                position = (record["time"], name, number)
                if position > after:
                    found.append((position, record))
            found.sort(key=lambda item: item[0])
        return None, budget

    def forget_expired(self, now: float | None = None) -> int:
        """Delete the hour folders older than the retention; returns how many
        objects went. Run by the workers' sweeper (worker.sweeper)."""
        cutoff = hour_folder(int(((time.time() if now is None else now) - self.retention_s) * 1000))
        removed = 0
        for model in self.blobs.children(PREFIX):
            for hour in self.blobs.children(f"{PREFIX}{model}/"):
                # Hour names sort as times do; the cutoff's own hour is kept whole.
                if hour >= cutoff:
                    continue
                for key in list(self.blobs.keys(f"{PREFIX}{model}/{hour}/")):
                    self.blobs.delete(key)
                    removed += 1
        return removed


def _page(found: list[tuple[Position, dict[str, Any]]], limit: int,
          resume: Position | None) -> tuple[list[dict[str, Any]], str | None]:  # fmt: skip
    """The first `limit` of `found` (sorted) and the next page's cursor;
    `resume` is where the reading stopped short (None: it read all there is)."""
    records = [record for _, record in found[:limit]]
    if len(found) > limit or (len(found) == limit and resume is not None):
        return records, cursor(found[limit - 1][0])
    if resume is None:
        return records, None
    return records, cursor(found[-1][0] if found else resume)


def _milliseconds(text: str) -> int:
    return milliseconds_of(datetime.fromisoformat(text))
