"""Exports of a published version: the `.keras` file, a TF SavedModel, ONNX.

The `.keras` file is served as it was published (hash-checked against the
manifest). The other two are built by TensorFlow's converters, which the API
process never imports (its backend is JAX, and TensorFlow costs hundreds of
MB and seconds to start): a child process (models.serving.export_converters) with
TensorFlow as Keras' backend builds both at once, one TensorFlow start for
the two, within `FITSERVE_EXPORT_TIME_LIMIT_S`. Versions are immutable, so
each build is stored beside the version (`models/<name>/<v>/exports/`) and
served from there ever after, by every host. A build runs once: concurrent
requests in a process wait on a lock, those of other processes and hosts on
a Redis lock, and then all find it stored.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import redis

import models
from models.errors import FitserveError, NotFound, ServiceUnavailable
from models.storage.model_store import ModelStore

log = logging.getLogger(__name__)

EXPORTS_FOLDER = "exports"
# A failed build is not retried for this long, by any process: a client
# retrying at once would otherwise start a TensorFlow process per request.
RETRY_FAILED_BUILD_S = 60.0
# The child's last words kept in an error message and the log.
STDERR_TAIL_CHARS = 2000


@dataclass(frozen=True)
class Format:
    name: str
    # The built file's name under the version's exports folder (None: the
    # published `.keras` file itself).
    stored_as: str | None
    suffix: str  # of the download's file name, after `<name>-<version>`
    media_type: str


FORMATS = {
    "keras": Format("keras", None, ".keras", "application/octet-stream"),
    "saved_model": Format("saved_model", "saved_model.zip", "-saved_model.zip", "application/zip"),
    "onnx": Format("onnx", "model.onnx", ".onnx", "application/octet-stream"),
}
BUILT = [name for name, spec in FORMATS.items() if spec.stored_as]


class ExportFailed(FitserveError):
    """The converter failed or ran out of time: a server fault (500), logged."""

    code = "export_failed"


@dataclass(frozen=True)
class Export:
    path: Path  # a local file: the store's own for a folder, a cached download for a bucket
    filename: str
    media_type: str


class Exporter:
    def __init__(
        self, store: ModelStore, client: redis.Redis | None, redis_prefix: str,
        time_limit_s: float,
    ) -> None:  # fmt: skip
        self.store = store
        # None: no lock across processes (a single process, as in some tests).
        self.redis = client
        self.redis_prefix = redis_prefix
        self.time_limit_s = time_limit_s
        # One build at a time in a process: each holds a TensorFlow process.
        self._building = threading.Lock()
        self._failed: dict[tuple[str, int, str], tuple[float, str]] = {}

    def export(self, name: str, version: int, format_name: str) -> Export:
        """The file of `format_name` (a key of FORMATS) for this version,
        built first if it never was. NotFound for an unknown version."""
        spec = FORMATS[format_name]
        if spec.stored_as is None:
            path = self.store.model_file(name, version)  # NotFound, and the hash checked
        else:
            path = self._built(name, version, spec.name)
        return Export(path, f"{name}-{version}{spec.suffix}", spec.media_type)

    def _key(self, name: str, version: int, format_name: str) -> str:
        return f"models/{name}/{int(version)}/{EXPORTS_FOLDER}/{FORMATS[format_name].stored_as}"

    def _stored(self, name: str, version: int, format_name: str) -> Path | None:
        try:
            return self.store.blobs.local_file(self._key(name, version, format_name))
        except FileNotFoundError:
            return None

    def _built(self, name: str, version: int, format_name: str) -> Path:
        self.store.manifest(name, version)  # NotFound before anything else
        if (path := self._stored(name, version, format_name)) is not None:
            return path
        with self._building, self._lock_across_processes(name, version):
            # Built by another request (here, or elsewhere) while this one waited.
            if (path := self._stored(name, version, format_name)) is not None:
                return path
            if (reason := self._recent_failure(name, version, format_name)) is not None:
                raise ExportFailed(reason)
            errors = self._build(name, version)
            for built, error in errors.items():
                if error is not None:
                    self._remember_failure(name, version, built, error)
        if errors.get(format_name) is not None:
            raise ExportFailed(str(errors[format_name]))
        if (path := self._stored(name, version, format_name)) is None:
            raise NotFound(f"Model {name!r} version {version} was deleted during its export")
        return path

    def _failure_key(self, name: str, version: int, format_name: str) -> str:
        return f"{self.redis_prefix}:export-failed:{name}:{int(version)}:{format_name}"

    def _recent_failure(self, name: str, version: int, format_name: str) -> str | None:
        """The error of a build that failed less than RETRY_FAILED_BUILD_S ago,
        in any process (through Redis), or None."""
        if self.redis is not None:
            found = self.redis.get(self._failure_key(name, version, format_name))
            if found is None:
                return None
            return found.decode() if isinstance(found, bytes) else str(found)
        failed_at, reason = self._failed.get((name, version, format_name), (-1e9, ""))
        return reason if time.monotonic() - failed_at < RETRY_FAILED_BUILD_S else None

    def _remember_failure(self, name: str, version: int, format_name: str, error: str) -> None:
        if self.redis is not None:
            self.redis.set(self._failure_key(name, version, format_name), error,
                           ex=int(RETRY_FAILED_BUILD_S))  # fmt: skip
        else:
            self._failed[(name, version, format_name)] = (time.monotonic(), error)

    def _lock_across_processes(self, name: str, version: int) -> _RedisLock:
        return _RedisLock(
            self.redis, f"{self.redis_prefix}:export:{name}:{int(version)}", self.time_limit_s
        )

    def _build(self, name: str, version: int) -> dict[str, str | None]:
        """Build every format of BUILT in one child process and store those
        that succeeded; returns each format's error (None when stored)."""
        metadata = self.store.metadata(name, version)
        model_path = self.store.model_file(name, version)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="fitserve-export-") as work:
            out = Path(work)
            errors = self._run_child(name, version, model_path, metadata["input_shape"], out)
            if errors["saved_model"] is None:
                zip_tf_serving_layout(out / "saved_model", out / "saved_model.zip", name, version)
            stored = []
            for format_name in BUILT:
                if errors[format_name] is None:
                    built = out / str(FORMATS[format_name].stored_as)
                    self.store.blobs.put_file(self._key(name, version, format_name), built)
                    stored.append(format_name)
        try:
            self.store.manifest(name, version)
        except NotFound:  # deleted while it was built: leave nothing under it
            delete_exports(self.store, name, version)
            raise
        # Each error once (a time limit fails both formats with one message).
        for error in dict.fromkeys(error for error in errors.values() if error is not None):
            log.error("%s", error)
        took = time.monotonic() - started
        log.info("exported %s version %s as %s in %.1f s",
                 name, version, ", ".join(stored) or "nothing", took)  # fmt: skip
        return errors

    def _run_child(
        self, name: str, version: int, model_path: Path, input_shape: list[int], out: Path
    ) -> dict[str, str | None]:
        command = [sys.executable, "-m", "models.serving.export_converters", str(model_path),
                   str(out), json.dumps(input_shape), name, str(version)]  # fmt: skip
        root = str(Path(models.__file__).resolve().parents[1])
        environment = {
            **os.environ,
            "KERAS_BACKEND": "tensorflow",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            # On CPU: a GPU is the workers', and TensorFlow would take all its memory.
            "CUDA_VISIBLE_DEVICES": "-1",
            "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
        }
        what = f"The export of model {name!r} version {version}"
        try:
            done = subprocess.run(command, env=environment, capture_output=True, text=True,
                                  timeout=self.time_limit_s, check=False)  # fmt: skip
        except subprocess.TimeoutExpired:
            message = (f"{what} did not finish within {self.time_limit_s:g} s (setting "
                       "FITSERVE_EXPORT_TIME_LIMIT_S); it was stopped.")  # fmt: skip
            return dict.fromkeys(BUILT, message)
        try:
            results = json.loads((out / "result.json").read_text())
        except (FileNotFoundError, ValueError):
            tail = (done.stderr or "")[-STDERR_TAIL_CHARS:]
            log.error("%s failed (exit status %s): %s", what, done.returncode, tail)
            message = f"{what} failed (its converter exited with status {done.returncode})."
            return dict.fromkeys(BUILT, message)
        return {format_name: (None if results.get(format_name) is None
                              else f"{what} as {format_name} failed: {results[format_name]}")
                for format_name in BUILT}  # fmt: skip


class _RedisLock:
    """A Redis lock held while one process builds a version's exports, so that
    processes and hosts sharing the store build it once. It expires on its own
    past the build's time limit, should its holder die."""

    def __init__(self, client: redis.Redis | None, key: str, time_limit_s: float) -> None:
        self.lock = None
        if client is not None:
            self.lock = client.lock(key, timeout=time_limit_s + 30,
                                    blocking_timeout=time_limit_s + 30)  # fmt: skip
        self.time_limit_s = time_limit_s

    def __enter__(self) -> None:
        if self.lock is not None and not self.lock.acquire():
            raise ServiceUnavailable(
                "Another process has been building this export for longer than its time "
                f"limit ({self.time_limit_s:g} s); try again shortly.",
                retry_after_s=10,
            )

    def __exit__(self, *exc: object) -> None:
        if self.lock is not None:
            try:
                self.lock.release()
            except redis.exceptions.LockError:  # expired meanwhile: nothing to release
                pass


def zip_tf_serving_layout(saved_model: Path, target: Path, name: str, version: int) -> None:
    """Zip a SavedModel folder as TF Serving lays models out,
    `<name>/<version>/saved_model.pb` (and `variables/`, `assets/`): unzipped
    into a model base path's parent, it is served as that version."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(saved_model.rglob("*")):
            arcname = f"{name}/{int(version)}/{path.relative_to(saved_model).as_posix()}"
            # Folders too: an empty `assets/` is part of the layout.
            archive.write(path, arcname + "/" if path.is_dir() else arcname)


def delete_exports(store: ModelStore, name: str, version: int) -> None:
    """Remove what was built for a version (when it is deleted)."""
    for key in list(store.blobs.keys(f"models/{name}/{int(version)}/{EXPORTS_FOLDER}/")):
        store.blobs.delete(key)
