"""Where stored bytes live: a local folder, or a bucket on an S3-compatible server.

Every store of this room (model versions, datasets, results, checkpoints) is
written against `Blobs`, a small object-store interface: whole objects put
and got by key, one conditional create, listings by prefix. A local folder
implements it with POSIX's atomic operations (rename, and link for
create-if-absent); a bucket with S3's (a PUT is atomic per object, and
`If-None-Match: *` makes a create conditional). So one host and many run the
same store code, and the store tests run against both. Keys are
`/`-separated, relative, and never start a segment with `.`: the local
folder keeps its partial writes under such names.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from models.settings import Settings

# A key's segments: letters, digits and `_-.=+@`, not starting with `.`.
_SEGMENT = re.compile(r"[A-Za-z0-9_\-=+@][A-Za-z0-9_\-=+@.]*")
# A partial file: a write, or a download into the cache, not yet renamed into place.
_PARTIAL = re.compile(r"\.tmp-[0-9a-f]{32}")
# Files from this size up go to S3 as multipart uploads, in parts this size.
MULTIPART_BYTES = 64 << 20
# S3 turns a conditional create that races another into 409; the client retries.
_CONFLICT_RETRIES = 20


class Blobs(ABC):
    """An object store: whole objects by key."""

    url: str
    # True when reads cross the network: callers then keep local copies and
    # cached listings (models.serving.catalog) instead of asking per request.
    remote: bool

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Write `data` at `key`, replacing what was there, atomically."""

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Write a local file's bytes at `key` (in parts, when large)."""

    @abstractmethod
    def create(self, key: str, data: bytes) -> bool:
        """Write `data` at `key` only if nothing is there; False when something is.

        Atomic: of many concurrent creates of one key, exactly one returns True."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes; FileNotFoundError when there is none."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def keys(self, prefix: str) -> Iterator[str]:
        """Every key that starts with `prefix` (a folder: end it with `/`)."""

    @abstractmethod
    def listing(self, prefix: str) -> Iterator[tuple[str, float]]:
        """`keys(prefix)`, each with when it was last written (seconds since
        the epoch), from the same listing."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove `key`; nothing happens when it is missing."""

    @abstractmethod
    def forget_partial_writes(self, older_than_s: float) -> int:
        """Remove what writes that were cut off left behind (a folder's
        partial files, a bucket's incomplete multipart uploads, partial
        downloads in the local cache), once older than `older_than_s`: a
        younger one may be a write in progress. Returns how many it removed."""

    @abstractmethod
    def local_file(self, key: str) -> Path:
        """A local path holding the object's bytes: the file itself for a
        folder, a download into the local cache for a bucket. Only for keys
        written once and never changed (their names carry their content's hash
        or a version): a cached copy is never checked against the store again.
        FileNotFoundError when there is no such object."""

    @abstractmethod
    def check(self) -> None:
        """Raise OSError (or the client's error) saying why the store cannot be
        written: the readiness probes ask this."""

    def folders_holding(self, prefix: str, name: str) -> list[str]:
        """The folders directly under the folder `prefix` that hold an object
        `name` (e.g. the versions that have a manifest), from one listing."""
        found = []
        for key in self.keys(prefix):
            folder, _, rest = key[len(prefix) :].partition("/")
            if rest == name:
                found.append(folder)
        return sorted(found)

    def children(self, prefix: str) -> list[str]:
        """The distinct next segments of the keys under the folder `prefix`."""
        return sorted({key[len(prefix) :].split("/", 1)[0] for key in self.keys(prefix)})


def check_key(key: str) -> str:
    if not key or key.startswith("/") or not all(_SEGMENT.fullmatch(s) for s in key.split("/")):
        raise ValueError(f"Not a valid storage key: {key!r}")
    return key


class FolderBlobs(Blobs):
    """A local folder (or one a single host mounts): the default for `make run`."""

    remote = False

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _staged(self, key: str, write: Any) -> Path:
        """A partial file beside `key`'s path, written by `write(handle)`."""
        path = self._path(key)
        partial = path.with_name(f".tmp-{uuid.uuid4().hex}")
        for attempt in range(3):
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                with partial.open("wb") as handle:
                    write(handle)
                return partial
            except FileNotFoundError:  # a delete removed the emptied folder meanwhile
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def put(self, key: str, data: bytes) -> None:
        partial = self._staged(key, lambda handle: handle.write(data))
        os.replace(partial, self._path(key))

    def put_file(self, key: str, path: Path) -> None:
        with Path(path).open("rb") as source:
            partial = self._staged(key, lambda handle: shutil.copyfileobj(source, handle, 1 << 20))
        os.replace(partial, self._path(key))

    def create(self, key: str, data: bytes) -> bool:
        partial = self._staged(key, lambda handle: handle.write(data))
        try:
            os.link(partial, self._path(key))  # fails if the name exists: atomic
            return True
        except FileExistsError:
            return False
        finally:
            partial.unlink(missing_ok=True)

    def check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=self.root):
            pass

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (IsADirectoryError, NotADirectoryError):
            raise FileNotFoundError(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def keys(self, prefix: str) -> Iterator[str]:
        if prefix.rstrip("/"):
            check_key(prefix.rstrip("/"))  # as S3Blobs.keys does: "../" must not list a sibling
        folder = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not folder.is_dir():
            return
        for directory, subfolders, files in os.walk(folder):
            subfolders[:] = [name for name in subfolders if not name.startswith(".")]
            relative = Path(directory).relative_to(self.root).as_posix()
            for name in files:
                key = name if relative == "." else f"{relative}/{name}"
                if not name.startswith(".") and key.startswith(prefix):
                    yield key

    def folders_holding(self, prefix: str, name: str) -> list[str]:
        # A directory read and a stat per folder, on plain strings: the
        # predictor asks for a model's versions on every request.
        check_key(prefix.rstrip("/") + "/" + name)
        folder = os.path.join(self.root, prefix)
        try:
            entries = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(entry for entry in entries if not entry.startswith(".")
                      and os.path.isfile(os.path.join(folder, entry, name)))  # fmt: skip

    def children(self, prefix: str) -> list[str]:
        # One directory read, not a walk of everything below it.
        if prefix.rstrip("/"):
            check_key(prefix.rstrip("/"))
        folder = self.root / prefix
        if not prefix.endswith("/") or not folder.is_dir():
            return super().children(prefix)
        return sorted(entry.name for entry in folder.iterdir() if not entry.name.startswith("."))

    def listing(self, prefix: str) -> Iterator[tuple[str, float]]:
        for key in self.keys(prefix):
            try:
                yield key, (self.root / key).stat().st_mtime
            except FileNotFoundError:  # deleted meanwhile
                continue

    def forget_partial_writes(self, older_than_s: float) -> int:
        removed = _remove_partials(self.root, time.time() - older_than_s)
        for path in removed:
            self._prune(path)
        return len(removed)

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        self._prune(path)

    def _prune(self, path: Path) -> None:
        # Folders emptied go too, as they do in a bucket (where they never exist).
        for folder in path.parents:
            if folder == self.root or not folder.is_relative_to(self.root):
                break
            try:
                folder.rmdir()
            except OSError:  # not empty (or gone): the folders above are not either
                break

    def local_file(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(key)
        return path


class S3Blobs(Blobs):
    """A bucket (and a prefix in it) on any S3-compatible server, through boto3.

    Credentials and region come the standard AWS way (environment, config
    files, instance roles); the endpoint from `endpoint_url`, else boto3's
    own `AWS_ENDPOINT_URL`. Objects read through `local_file` are cached
    under `cache_dir`, which is this host's own and never shared."""

    remote = True

    def __init__(
        self, url: str, cache_dir: Path, endpoint_url: str | None = None,
        addressing_style: str = "path",
    ) -> None:  # fmt: skip
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"An S3 store URL looks like s3://bucket/prefix. Received: {url!r}")
        self.url = url
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.cache_dir = Path(cache_dir)
        self.endpoint_url = endpoint_url
        self.addressing_style = addressing_style
        self._clients: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._bucket_checked = False

    @property
    def client(self) -> Any:
        # One client per process: the API server and Celery fork, and a connection
        # pool must not be shared across a fork.
        pid = os.getpid()
        with self._lock:
            if pid not in self._clients:
                from botocore.config import Config

                self._clients = {pid: _new_client(
                    "s3", endpoint_url=self.endpoint_url,
                    config=Config(
                        s3={"addressing_style": self.addressing_style},
                        retries={"mode": "standard", "max_attempts": 4},
                        connect_timeout=5, read_timeout=60,
                        max_pool_connections=32,
                        # SeaweedFS and MinIO do not all take the newer default checksums.
                        request_checksum_calculation="when_required",
                        response_checksum_validation="when_required",
                    ),
                )}  # fmt: skip
            if not self._bucket_checked:
                self._ensure_bucket(self._clients[pid])
                self._bucket_checked = True  # only once it succeeded: else on the next call
            return self._clients[pid]

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _ensure_bucket(self, client: Any) -> None:
        """Create the bucket when it is missing (an operator's first start)."""
        from botocore.exceptions import ClientError

        try:
            client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _status(exc) not in (403, 404):
                raise
            try:
                client.create_bucket(Bucket=self.bucket)
            except ClientError as created:
                if _code(created) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    def check(self) -> None:
        self.client.head_bucket(Bucket=self.bucket)

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._name(key), Body=data)

    def put_file(self, key: str, path: Path) -> None:
        from boto3.s3.transfer import TransferConfig

        if Path(path).stat().st_size < MULTIPART_BYTES:
            # One PUT: the transfer manager's threads cost more than a small
            # file's upload (a model, most datasets).
            with Path(path).open("rb") as body:
                self.client.put_object(Bucket=self.bucket, Key=self._name(key), Body=body)
            return
        # Large datasets go up in 64 MiB parts, a failed part retried alone.
        config = TransferConfig(multipart_threshold=MULTIPART_BYTES,
                                multipart_chunksize=MULTIPART_BYTES)  # fmt: skip
        self.client.upload_file(str(path), self.bucket, self._name(key), Config=config)

    def create(self, key: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError

        for attempt in range(_CONFLICT_RETRIES):
            try:
                self.client.put_object(
                    Bucket=self.bucket, Key=self._name(key), Body=data, IfNoneMatch="*"
                )
                return True
            except ClientError as exc:
                if _status(exc) == 412:
                    return False
                if _status(exc) != 409:  # 409: a concurrent create is in flight; ask again
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise TimeoutError(f"The store kept answering 409 to a conditional create of {key!r}")

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as exc:
            if _status(exc) == 404:
                raise FileNotFoundError(key) from None
            raise
        return answer["Body"].read()

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._name(key))
            return True
        except ClientError as exc:
            if _status(exc) == 404:
                return False
            raise

    def keys(self, prefix: str) -> Iterator[str]:
        if prefix.rstrip("/"):
            check_key(prefix.rstrip("/"))
        base = f"{self.prefix}/" if self.prefix else ""
        skip = len(base)
        full = base + prefix
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=full
        )
        for page in pages:
            for item in page.get("Contents", []):
                yield item["Key"][skip:]

    def listing(self, prefix: str) -> Iterator[tuple[str, float]]:
        if prefix.rstrip("/"):
            check_key(prefix.rstrip("/"))
        base = f"{self.prefix}/" if self.prefix else ""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=base + prefix
        )
        for page in pages:
            for item in page.get("Contents", []):
                yield item["Key"][len(base) :], item["LastModified"].timestamp()

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._name(key))

    def forget_partial_writes(self, older_than_s: float) -> int:
        # A multipart upload cut off keeps its parts (and their cost) until aborted.
        cutoff = time.time() - older_than_s
        removed = len(_remove_partials(self.cache_dir, cutoff))
        base = f"{self.prefix}/" if self.prefix else ""
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=base
        )
        for page in pages:
            for upload in page.get("Uploads", []):
                if upload["Initiated"].timestamp() < cutoff:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    removed += 1
        return removed

    def local_file(self, key: str) -> Path:
        from botocore.exceptions import ClientError

        path = self.cache_dir / check_key(key)
        if path.is_file():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".tmp-{uuid.uuid4().hex}")
        try:
            self.client.download_file(self.bucket, self._name(key), str(partial))
            os.replace(partial, path)
        except ClientError as exc:
            if _status(exc) == 404:
                raise FileNotFoundError(key) from None
            raise
        finally:
            partial.unlink(missing_ok=True)
        return path


_sessions: dict[int, Any] = {}
_sessions_lock = threading.Lock()


def _new_client(service: str, **options: Any) -> Any:
    """A client from this process's boto3 session: making a session reads every
    service's model (a few tenths of a second), a client from one costs little.
    Sessions are not thread-safe: clients are made one at a time."""
    import boto3

    with _sessions_lock:
        pid = os.getpid()
        if pid not in _sessions:
            _sessions.clear()
            _sessions[pid] = boto3.session.Session()
        return _sessions[pid].client(service, **options)


def _remove_partials(folder: Path, cutoff: float) -> list[Path]:
    """Delete the partial files under `folder` last written before `cutoff`."""
    removed = []
    for directory, _, files in os.walk(folder):
        for name in filter(_PARTIAL.fullmatch, files):
            path = Path(directory, name)
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed.append(path)
            except FileNotFoundError:  # renamed into place, or removed, meanwhile
                continue
    return removed


def _status(error: Any) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _code(error: Any) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def open_blobs(settings: Settings) -> Blobs:
    """The store that `settings.store_url` names; `data_dir` when it names none."""
    url = settings.store_url
    if url and url.startswith("s3://"):
        return S3Blobs(url, settings.cache_dir, settings.s3.endpoint_url,
                       settings.s3.addressing_style)  # fmt: skip
    if url and "://" in url and not url.startswith("file://"):
        raise ValueError(f"FITSERVE_STORE_URL is a folder or s3://bucket/prefix. Received: {url!r}")
    return FolderBlobs(Path(url.removeprefix("file://")) if url else settings.data_dir)
