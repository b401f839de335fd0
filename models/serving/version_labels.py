"""Version labels (TF Serving's): names such as `stable` or `canary` that point
at a published version of a model, moved by operators. They live in Redis,
the one state every API process on every host shares, under
`<prefix>:labels:<model>` (label -> version), with each label's history of
moves (`{"time", "from", "to", "role"}`, never the key) and markers for
versions being deleted or deleted.

A move is one Lua script: it refuses a version being deleted or deleted,
sets the label and appends the move at once. `delete_version` refuses a
version a label points at (Conflict) and otherwise marks it as being deleted,
so a move and a delete never both succeed.

A request through a label reads the mapping from memory: each process
mirrors the mappings it was asked about (`version_of`), a move or removal
is announced on the models' channel (`on_change`, as the store announces a
publish), and the catalog's subscriber reads the mapping again on the
announcement and every poll (`refresh`, off the request path). With Redis
away a label resolves to where it last pointed and only moves fail (503).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import redis

from models.errors import Conflict, NotFound, ValidationFailed, problem, quoted
from models.ids import LABEL_NAME, anchored, is_label_name

log = logging.getLogger(__name__)

# Moves kept per label (the oldest go first).
HISTORY_KEPT = 100
# How long a version counts as being deleted if the deleting process dies
# before saying it is done (a delete takes well under a second).
DELETING_TTL_MS = 300_000
# Redis away: at most one warning per model this often about serving the last mapping.
WARN_EVERY_S = 10.0
# Models whose mappings a process mirrors, at most (names are the caller's to
# choose: the least recently asked about are read from Redis again).
MAX_MIRRORED = 100_000

# KEYS: labels hash, the label's history, the version's deleting marker, the
# deleted set. ARGV: label, version, time (RFC 3339), role, moves kept.
# Returns {outcome, previous version or ''}: outcome 'moved', 'same' (it
# pointed there already: nothing recorded), 'deleting' or 'deleted'.
_MOVE = """
if redis.call('EXISTS', KEYS[3]) == 1 then return {'deleting', ''} end
if redis.call('SISMEMBER', KEYS[4], ARGV[2]) == 1 then return {'deleted', ''} end
local from = redis.call('HGET', KEYS[1], ARGV[1])
if from == ARGV[2] then return {'same', from} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local move = {time = ARGV[3], to = tonumber(ARGV[2]), role = ARGV[4]}
if ARGV[4] == '' then move['role'] = cjson.null end
if from then move['from'] = tonumber(from) else move['from'] = cjson.null end
redis.call('RPUSH', KEYS[2], cjson.encode(move))
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[5]), -1)
return {'moved', from or ''}
"""

# KEYS: labels hash, the label's history. ARGV: label, time, role, moves kept.
# Returns the version the label pointed at, or false when there was no label.
_REMOVE = """
local from = redis.call('HGET', KEYS[1], ARGV[1])
if not from then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
local move = {time = ARGV[2], from = tonumber(from), to = cjson.null, role = ARGV[3]}
if ARGV[3] == '' then move['role'] = cjson.null end
redis.call('RPUSH', KEYS[2], cjson.encode(move))
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)
return from
"""

# KEYS: labels hash, the version's deleting marker. ARGV: version, marker ms.
# Returns the labels that point at the version; when there are none, the
# version is marked as being deleted (moves to it are refused from now on).
_GUARD_DELETE = """
local holders = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i + 1] == ARGV[1] then table.insert(holders, all[i]) end
end
if #holders == 0 then redis.call('SET', KEYS[2], '1', 'PX', ARGV[2]) end
return holders
"""


def check_label_name(label: str) -> None:
    if not is_label_name(label):
        raise NotFound(
            f"No label has this name: labels match {anchored(LABEL_NAME)}. "
            f"Received: {quoted(label)}"
        )


class VersionLabels:
    """Labels of every model, in Redis (see the module's docstring). Thread-safe."""

    def __init__(
        self, client: redis.Redis, prefix: str, on_change: Callable[[str], None] | None = None
    ) -> None:
        self.redis = client
        self.prefix = prefix
        # Told the model's name after a move or removal (models.serving.catalog's
        # `announce_changes`: every process then reads the mapping again).
        self.on_change = on_change
        self._move = client.register_script(_MOVE)
        self._remove = client.register_script(_REMOVE)
        self._guard_delete = client.register_script(_GUARD_DELETE)
        self._lock = threading.Lock()
        # The last mapping read per model (models with labels only: names are
        # the caller's to choose), served while Redis is away.
        self._known: dict[str, dict[str, int]] = {}
        self._warned: dict[str, float] = {}
        # Models whose mapping `_known` mirrors ({} when absent there): requests
        # through their labels are answered from memory.
        self._mirrored: OrderedDict[str, None] = OrderedDict()

    # -- keys --------------------------------------------------------------

    def _labels_key(self, name: str) -> str:
        return f"{self.prefix}:labels:{name}"

    def _history_key(self, name: str, label: str) -> str:
        return f"{self.prefix}:labels:{name}:history:{label}"

    def _deleting_key(self, name: str, version: int) -> str:
        return f"{self.prefix}:labels:{name}:deleting:{int(version)}"

    def _deleted_key(self, name: str) -> str:
        return f"{self.prefix}:labels:{name}:deleted"

    # -- reads -------------------------------------------------------------

    def labels(self, name: str) -> dict[str, int]:
        """The model's labels and the versions they point at ({} when none),
        read from Redis. With Redis away: the last mapping this process read,
        else the error."""
        return self._read(name, mirror=False)

    def _read(self, name: str, *, mirror: bool) -> dict[str, int]:
        try:
            raw = self.redis.hgetall(self._labels_key(name))
        except redis.RedisError as exc:
            with self._lock:
                known = self._known.get(name)
            if known is None:
                raise
            self._warn_stale(name, exc)
            return dict(known)
        return self._remember(name, raw, mirror=mirror)

    def known(self, name: str) -> dict[str, int] | None:
        """The model's mapping as this process mirrors it (no round trip);
        None when it does not mirror the model."""
        with self._lock:
            if name not in self._mirrored:
                return None
            return dict(self._known.get(name, {}))

    def refresh(self, names: Sequence[str]) -> None:
        """Read the mappings of `names` into the mirror, in one round trip.
        Never raises: with Redis away the mirror stands (logged)."""
        names = list(names)
        if not names:
            return
        try:
            answers = self._read_many(names)
        except redis.RedisError as exc:
            log.warning("labels of %d models unread (Redis): the last known stand: %s",
                        len(names), exc)  # fmt: skip
            return
        for name, raw in zip(names, answers, strict=True):
            self._remember(name, raw, mirror=True)

    def _read_many(self, names: Sequence[str]) -> list[dict[Any, Any]]:
        """Each model's mapping as Redis answers it, in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(self._labels_key(name))
            return list(pipe.execute())

    def of_models(self, names: Sequence[str]) -> dict[str, dict[str, int]]:
        """The labels of each model, read in one round trip; never raises (a
        listing of models works without Redis): the last mappings read, then."""
        try:
            answers = self._read_many(names)
        except redis.RedisError as exc:
            log.warning("labels unread (Redis): listing the last known ones: %s", exc)
            with self._lock:
                return {name: dict(self._known.get(name, {})) for name in names}
        return {name: self._remember(name, raw) for name, raw in zip(names, answers, strict=True)}

    def version_of(self, name: str, label: str) -> int:
        """The version `label` points at; NotFound naming the model's labels otherwise."""
        check_label_name(label)
        mapping = self.known(name)
        if mapping is None or label not in mapping:
            # First asked here (read once, then mirrored), or a label the
            # mirror lacks: made a moment ago, before its announcement came.
            mapping = self._read(name, mirror=True)
        if label not in mapping:
            raise NotFound(
                f"Model {name!r} has no label {label!r}; it has labels {quoted(sorted(mapping))}. "
                f"Received: label={label!r}"
            )
        return mapping[label]

    def history(self, name: str, label: str) -> list[dict[str, Any]]:
        """The label's moves, oldest first (the last HISTORY_KEPT)."""
        raw = self.redis.lrange(self._history_key(name, label), 0, -1)
        return [json.loads(item) for item in raw]

    # -- moves -------------------------------------------------------------

    def move(self, name: str, label: str, version: int, role: str | None) -> int | None:
        """Point `label` at `version` (which the caller has checked exists) and
        record the move; the version it pointed at before (None if new).
        ValidationFailed at ["version"] when the version is being deleted or was."""
        check_label_name(label)
        keys = [
            self._labels_key(name),
            self._history_key(name, label),
            self._deleting_key(name, version),
            self._deleted_key(name),
        ]
        outcome, previous = self._move(
            keys=keys, args=[label, int(version), _now(), role or "", HISTORY_KEPT]
        )
        outcome = _text(outcome)
        if outcome in ("deleting", "deleted"):
            state = "is being deleted" if outcome == "deleting" else "was deleted"
            message = (
                f"Model {name!r} version {version} {state}: a label cannot point at it. "
                f"Received: version={version}"
            )
            raise ValidationFailed(message, details=[problem(["version"], message)])
        self._changed(name)
        previous = _text(previous)
        return int(previous) if previous else None

    def remove(self, name: str, label: str, role: str | None) -> int:
        """Delete the label (recorded as a move to null); the version it pointed at."""
        check_label_name(label)
        keys = [self._labels_key(name), self._history_key(name, label)]
        previous = self._remove(keys=keys, args=[label, _now(), role or "", HISTORY_KEPT])
        if previous is None:
            raise NotFound(
                f"Model {name!r} has no label {label!r}; it has labels "
                f"{quoted(sorted(self.labels(name)))}. Received: label={label!r}"
            )
        self._changed(name)
        return int(_text(previous))

    def delete_version(self, name: str, version: int, delete: Callable[[], None]) -> None:
        """Run `delete()` (the store's delete of the version) unless a label
        points at the version: then Conflict, naming the labels. A move that
        races with it is refused (see the module's docstring)."""
        marker = self._deleting_key(name, version)
        holders = sorted(
            _text(label)
            for label in self._guard_delete(
                keys=[self._labels_key(name), marker], args=[int(version), DELETING_TTL_MS]
            )
        )
        if holders:
            which = ", ".join(repr(label) for label in holders)
            message = (
                f"Model {name!r} version {version} has label{'s' if len(holders) > 1 else ''} "
                f"{which} pointing at it: move or delete "
                f"{'them' if len(holders) > 1 else 'it'} first "
                f"(PUT or DELETE /v1/models/{name}/labels/<label>). Received: version={version}"
            )
            raise Conflict(message, details=[problem(["path", "version"], message)])
        try:
            delete()
        except BaseException:
            # Not deleted (not found, or the store failed): moves to it may go on.
            self.redis.delete(marker)
            raise
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(self._deleted_key(name), int(version))
            pipe.delete(marker)
            pipe.execute()

    # -- the last known mapping ------------------------------------------

    def _changed(self, name: str) -> None:
        """After a move or removal: this process reads it back at once (read
        your writes), the others when the change is announced to them."""
        self.refresh([name])
        if self.on_change is not None:
            self.on_change(name)

    def _remember(self, name: str, raw: dict[Any, Any], *, mirror: bool = False) -> dict[str, int]:
        """Keep a mapping just read: for Redis' absences, and in the mirror
        when `mirror` (or when the model is mirrored already)."""
        mapping = {_text(label): int(_text(version)) for label, version in raw.items()}
        with self._lock:
            if mapping:
                self._known[name] = mapping
            else:
                self._known.pop(name, None)
            if mirror or name in self._mirrored:
                self._mirrored[name] = None
                self._mirrored.move_to_end(name)
                while len(self._mirrored) > MAX_MIRRORED:
                    self._mirrored.popitem(last=False)
        return mapping

    def _warn_stale(self, name: str, exc: Exception) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._warned.get(name, float("-inf")) < WARN_EVERY_S:
                return
            self._warned[name] = now
        log.warning("labels of %s unread (Redis): serving the last known ones: %s", name, exc)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
