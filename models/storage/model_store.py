"""The model store: TF Serving's `<name>/<version>/` tree on a local or shared disk.

Publishing writes a complete version into a temporary folder and renames it
into place. `rename` of a folder onto a missing name is atomic, and onto an
existing one fails, so a reader never sees half a model and two publishers
racing for version N+1 cannot both win: the loser retries with N+2.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.errors import NotFound
from models.ids import MODEL_NAME, VERSION, anchored, is_model_name

MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
RETIRED_PREFIX = ".retired-"


class ModelStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def publish(
        self, name: str, write_model: Callable[[Path], None], metadata: dict[str, Any]
    ) -> int:
        """Publish a new version of `name`; `write_model(path)` saves the `.keras` file."""
        check_model_name(name)
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        # Named after the job, so its retry can clear what a crash left behind.
        owner = metadata.get("job") or "unowned"
        for debris in folder.glob(f".tmp-{owner}-*"):
            shutil.rmtree(debris, ignore_errors=True)
        staging = folder / f".tmp-{owner}-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            write_model(staging / MODEL_FILE)
            # Recorded so that a load can tell the file is the one we wrote.
            metadata = {**metadata, "model_sha256": file_sha256(staging / MODEL_FILE)}
            version = max([0, *self.versions(name), *self._retired(name)]) + 1
            while True:
                _write_json(staging / METADATA_FILE, {**metadata, "name": name, "version": version})
                try:
                    os.rename(staging, folder / str(version))
                    return version
                except OSError:
                    if not (folder / str(version)).exists():
                        raise
                    version += 1  # another publisher took it
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            entry.name
            for entry in self.root.iterdir()
            if is_model_name(entry.name) and self.versions(entry.name)
        )

    def versions(self, name: str) -> list[int]:
        folder = self.root / name
        if not is_model_name(name) or not folder.is_dir():
            return []
        return sorted(
            int(entry.name) for entry in folder.iterdir() if VERSION.fullmatch(entry.name)
        )

    def latest_version(self, name: str) -> int | None:
        versions = self.versions(name)
        return versions[-1] if versions else None

    def resolve(self, name: str, version: int | None) -> int:
        """The version to serve: `version` if it exists, else the latest; NotFound otherwise."""
        versions = self.versions(name)
        if not versions:
            raise NotFound(f"No model named {name!r} has been published. Received: {name!r}")
        if version is None:
            return versions[-1]
        if version not in versions:
            raise NotFound(
                f"Model {name!r} has no version {version}; it has versions {versions}. "
                f"Received: version={version}"
            )
        return version

    def version_published_by(self, name: str, job_id: str) -> int | None:
        """The version that job `job_id` published, if any: a retried job must
        not publish a second one."""
        for version in reversed(self.versions(name)):
            try:
                if self.metadata(name, version).get("job") == job_id:
                    return version
            except (OSError, ValueError, NotFound):
                continue  # deleted meanwhile, or not ours to read
        return None

    def model_path(self, name: str, version: int) -> Path:
        return self.root / name / str(self.resolve(name, version)) / MODEL_FILE

    def metadata(self, name: str, version: int) -> dict[str, Any]:
        path = self.root / name / str(self.resolve(name, version)) / METADATA_FILE
        return json.loads(path.read_text())

    def delete(self, name: str, version: int) -> None:
        self.resolve(name, version)
        folder = self.root / name
        # A deleted number is never published again: a cache elsewhere may
        # still hold the old model under it. The marker remembers it.
        (folder / f"{RETIRED_PREFIX}{version}").touch()
        # Rename first so readers stop seeing the version at once, then delete.
        doomed = folder / f".deleted-{version}-{uuid.uuid4().hex}"
        os.rename(folder / str(version), doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    def _retired(self, name: str) -> list[int]:
        folder = self.root / name
        return [
            int(entry.name.removeprefix(RETIRED_PREFIX))
            for entry in folder.glob(f"{RETIRED_PREFIX}*")
            if entry.name.removeprefix(RETIRED_PREFIX).isdigit()
        ]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_model_name(name: str) -> None:
    # The API refuses bad names with a 422 first; this guards the filesystem.
    if not is_model_name(name):
        raise ValueError(f"Model names match {anchored(MODEL_NAME)}. Received: {name!r}")


def _write_json(path: Path, value: dict[str, Any]) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True))
