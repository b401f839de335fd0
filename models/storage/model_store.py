"""The model store: TF Serving's `<name>/<version>/` tree, in a folder or a bucket.

Under `models/<name>/<version>/` a version is three objects, written in order:
`claim.json`, a conditional create (If-None-Match: * on S3, link() on a
folder), so of two publishers racing for a number exactly one gets it, and
kept after a delete so a number is never reused; `model.keras`; and
`manifest.json` (the metadata, the sha256 and size of every file), created
last and only if absent: a version exists exactly when its manifest does.
`exports/` beside them holds its SavedModel and ONNX files once built.
`models/<name>/jobs/<job id>` names the number a job claimed, so every
attempt of a job publishes under one number, and an attempt that did not
claim it writes `model-<hex>.keras`, never another attempt's model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.errors import DamagedStore, NotFound, quoted
from models.ids import MODEL_NAME, VERSION, anchored, is_job_id, is_model_name
from models.storage.blobs import Blobs, FolderBlobs

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
MANIFEST_FILE = "manifest.json"
CLAIM_FILE = "claim.json"
# The model files a manifest may name: the claimer's, or another attempt's.
_MODEL_FILES = re.compile(r"model(-[0-9a-f]{12})?\.keras")


class ModelStore:
    def __init__(self, blobs: Blobs, on_change: Callable[[str], None] | None = None) -> None:
        self.blobs = blobs
        # Told the model's name after each publish and delete (the API
        # processes' catalogs learn of it: models.serving.catalog).
        self.on_change = on_change

    def publish(
        self, name: str, write_model: Callable[[Path], None], metadata: dict[str, Any],
        may_publish: Callable[[], None] | None = None,
    ) -> int:  # fmt: skip
        """Publish a new version of `name`; `write_model(path)` saves the `.keras` file.

        With `metadata["job"]`, a job publishes one version whatever its
        attempts: a retry completes the version its first attempt claimed, and
        an attempt that finds that version published (by another attempt,
        meanwhile) returns it. `may_publish()` raises (LeaseLost) when the
        caller must not publish any more; it is asked before a number is taken
        and just before the manifest is written, and abandons the version."""
        check_model_name(name)
        job_id = metadata.get("job")
        claimed = self._claimed_by(name, job_id)
        if claimed is not None and self.blobs.exists(f"models/{name}/{claimed}/{MANIFEST_FILE}"):
            return claimed  # a second delivery of a job that published already
        check = may_publish or (lambda: None)
        with tempfile.TemporaryDirectory(prefix="fitserve-publish-") as staging:
            local = Path(staging) / MODEL_FILE
            write_model(local)
            digest, size = file_sha256(local), local.stat().st_size
            check()
            if claimed is None:
                version, claimer = self._claim(name, job_id)
            else:
                version, claimer = claimed, False
            folder = f"models/{name}/{version}"
            model_file = MODEL_FILE if claimer else f"model-{uuid.uuid4().hex[:12]}.keras"
            self.blobs.put_file(f"{folder}/{model_file}", local)
        manifest = {
            **metadata, "name": name, "version": version, "model_sha256": digest,
            "files": {model_file: {"sha256": digest, "bytes": size}},
        }  # fmt: skip
        try:
            check()
        except BaseException:
            self.blobs.delete(f"{folder}/{model_file}")  # no manifest names it
            raise
        if not self.blobs.create(f"{folder}/{MANIFEST_FILE}", _json(manifest)):
            # Another attempt of the job published the version meanwhile.
            self.blobs.delete(f"{folder}/{model_file}")
            return version
        if not claimer:  # what attempts that died (or lost) here left
            for key in self._model_files(folder):
                if key != f"{folder}/{model_file}":
                    self.blobs.delete(key)
        self._changed(name)
        return version

    def _model_files(self, folder: str) -> list[str]:
        return [key for key in self.blobs.keys(f"{folder}/")
                if _MODEL_FILES.fullmatch(key.rpartition("/")[2])]  # fmt: skip

    def _claimed_by(self, name: str, job_id: Any) -> int | None:
        """The number job `job_id` claimed for `name` and may still finish: None
        when it claimed none, or when that version was deleted since."""
        if not is_job_id(job_id):
            return None
        try:
            version = int(json.loads(self.blobs.get(f"models/{name}/jobs/{job_id}"))["version"])
            claim = json.loads(self.blobs.get(f"models/{name}/{version}/{CLAIM_FILE}"))
        except FileNotFoundError:
            return None
        return None if claim.get("deleted") else version

    def _claim(self, name: str, job_id: Any) -> tuple[int, bool]:
        """A new number: the first free one above every number ever claimed;
        and True. For a job whose other attempt claimed one meanwhile, that
        number, and False (the number taken here stays unused, as a failed
        upload's does)."""
        version = max([0, *self._claimed(name)]) + 1
        owner = _json({"job": job_id if is_job_id(job_id) else None})
        while not self.blobs.create(f"models/{name}/{version}/{CLAIM_FILE}", owner):
            version += 1  # another publisher took it
        if not is_job_id(job_id):
            return version, True
        marker = f"models/{name}/jobs/{job_id}"
        if self.blobs.create(marker, _json({"version": version})):
            return version, True
        if (earlier := self._claimed_by(name, job_id)) is not None:
            return earlier, False
        # The version the job published earlier was deleted: this one replaces it.
        self.blobs.put(marker, _json({"version": version}))
        return version, True

    def _claimed(self, name: str) -> list[int]:
        return [int(folder) for folder, files in self._listing(name).items() if CLAIM_FILE in files]

    def _listing(self, name: str) -> dict[str, set[str]]:
        """The objects under each version folder of `name`, from one listing."""
        folders: dict[str, set[str]] = {}
        if not is_model_name(name):
            return folders
        prefix = f"models/{name}/"
        for key in self.blobs.keys(prefix):
            folder, _, rest = key[len(prefix) :].partition("/")
            if VERSION.fullmatch(folder):
                folders.setdefault(folder, set()).add(rest)
        return folders

    def names(self) -> list[str]:
        """Every model with at least one version."""
        return sorted(self.all_versions())

    def all_versions(self) -> dict[str, list[int]]:
        """Every model with at least one version, and its versions ascending,
        from one listing of the store."""
        found: dict[str, list[int]] = {}
        for key in self.blobs.keys("models/"):
            parts = key.split("/")
            if len(parts) == 4 and parts[3] == MANIFEST_FILE and VERSION.fullmatch(parts[2]):
                if is_model_name(parts[1]):
                    found.setdefault(parts[1], []).append(int(parts[2]))
        return {name: sorted(versions) for name, versions in sorted(found.items())}

    def versions(self, name: str) -> list[int]:
        if not is_model_name(name):
            return []
        folders = self.blobs.folders_holding(f"models/{name}/", MANIFEST_FILE)
        return sorted(int(folder) for folder in folders if VERSION.fullmatch(folder))

    def latest_version(self, name: str) -> int | None:
        versions = self.versions(name)
        return versions[-1] if versions else None

    def resolve(self, name: str, version: int | None) -> int:
        """The version to serve: `version` if it exists, else the latest; NotFound otherwise."""
        return resolve_in(name, version, self.versions(name))

    def version_published_by(self, name: str, job_id: str) -> int | None:
        """The version that job `job_id` published, if any: a retried job must
        not publish a second one."""
        if not (is_model_name(name) and is_job_id(job_id)):
            return None
        try:
            version = int(json.loads(self.blobs.get(f"models/{name}/jobs/{job_id}"))["version"])
        except FileNotFoundError:
            return None
        # Claimed but not finished (its worker died mid-publish): not published.
        if self.blobs.exists(f"models/{name}/{version}/{MANIFEST_FILE}"):
            return version
        return None

    def manifest(self, name: str, version: int) -> dict[str, Any]:
        check_model_name(name)
        key = f"models/{name}/{int(version)}/{MANIFEST_FILE}"
        try:
            data = self.blobs.get(key)
        except FileNotFoundError:
            self.resolve(name, version)  # NotFound, naming what there is
            raise NotFound(f"Model {name!r} version {version} was deleted") from None
        manifest = _json_object(data)
        if manifest is None or not isinstance(manifest.get("files"), dict):
            # Not written by publish (which writes it whole or not at all):
            # damaged in the store. Listings skip it; asked for, it is a 500.
            log.warning("skipping %s in %s: not a readable manifest", key, self.blobs.url)
            raise DamagedStore(
                f"The manifest of model {name!r} version {version} ({key}) cannot be read: "
                "the store holds a damaged file. Delete the version, or restore the file."
            )
        return manifest

    def metadata(self, name: str, version: int) -> dict[str, Any]:
        manifest = self.manifest(name, version)
        manifest.pop("files", None)
        return manifest

    def model_file(self, name: str, version: int) -> Path:
        """A local path to the version's `.keras` file, its hash checked
        against the manifest: only files this service wrote are loaded."""
        files = self.manifest(name, version)["files"]
        named = next((file for file in files if _MODEL_FILES.fullmatch(str(file))), MODEL_FILE)
        expected = (files.get(named) or {}).get("sha256")
        key = f"models/{name}/{int(version)}/{named}"
        path = self.blobs.local_file(key)
        if file_sha256(path) != expected:
            if self.blobs.remote:  # a damaged download: fetch it once more
                path.unlink(missing_ok=True)
                path = self.blobs.local_file(key)
            if file_sha256(path) != expected:
                raise ValueError(
                    f"{key} does not match the hash recorded when it was published; "
                    "refusing to load it"
                )
        return path

    def delete(self, name: str, version: int) -> None:
        """Delete a version. Idempotent: of two deletes racing (two API
        processes, two hosts) both may finish, or the later one is NotFound."""
        folder = f"models/{name}/{int(version)}"
        try:
            self.resolve(name, version)
        except NotFound:
            if is_model_name(name) and self._read_claim(folder).get("deleted"):
                raise NotFound(
                    f"Model {name!r} version {version} was deleted already; "
                    f"it has versions {quoted(self.versions(name))}. Received: version={version}"
                ) from None
            raise
        # The claim stays, so the number is never published again, marked so
        # that the job that claimed it does not finish it again on a retry.
        claim = self._read_claim(folder)
        self.blobs.put(f"{folder}/{CLAIM_FILE}", _json({**claim, "deleted": True}))
        # Then the manifest: the version is gone for readers at once.
        self.blobs.delete(f"{folder}/{MANIFEST_FILE}")
        for key in self._model_files(folder):
            self.blobs.delete(key)
        # And what was built from it (models.serving.exporter: `exports/...`).
        for key in list(self.blobs.keys(f"{folder}/exports/")):
            self.blobs.delete(key)
        self._changed(name)

    def _read_claim(self, folder: str) -> dict[str, Any]:
        """A version's claim; a missing or damaged one reads as claimed by no job."""
        try:
            claim = _json_object(self.blobs.get(f"{folder}/{CLAIM_FILE}"))
        except FileNotFoundError:
            return {"job": None}
        if claim is None:
            log.warning("%s/%s in %s is damaged; read as claimed by no job",
                        folder, CLAIM_FILE, self.blobs.url)  # fmt: skip
            return {"job": None}
        return claim

    def _changed(self, name: str) -> None:
        if self.on_change is not None:
            self.on_change(name)


def resolve_in(name: str, version: int | None, versions: list[int]) -> int:
    """`version` if it is among `versions`, else the latest; NotFound otherwise."""
    if not versions:
        raise NotFound(f"No model named {name!r} has been published. Received: {name!r}")
    if version is None:
        return versions[-1]
    if version not in versions:
        raise NotFound(
            f"Model {name!r} has no version {version}; it has versions {quoted(versions)}. "
            f"Received: version={version}"
        )
    return version


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_model_name(name: str) -> None:
    # The API refuses bad names with a 422 first; this guards the store's keys.
    if not is_model_name(name):
        raise ValueError(f"Model names match {anchored(MODEL_NAME)}. Received: {name!r}")


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True).encode()


def _json_object(data: bytes) -> dict[str, Any] | None:
    """A JSON object's bytes as a dict; None when they are anything else."""
    try:
        value = json.loads(data)
    except ValueError:  # not JSON, or not UTF-8
        return None
    return value if isinstance(value, dict) else None


def adopt_earlier_layout(blobs: Blobs) -> list[str]:
    """Bring a folder store written before the claim/manifest layout into it.

    Earlier releases renamed whole version folders into place and kept
    `metadata.json` (the manifest without its file list) beside the model, and
    a `.retired-<N>` file per deleted number. Each such version gets its claim
    and manifest (the metadata was written last then too, so a folder that has
    one is whole), and each retired number a claim marked deleted. Returns what
    it adopted; idempotent, so every process may run it at start."""
    if not isinstance(blobs, FolderBlobs) or not (blobs.root / "models").is_dir():
        return []
    adopted = []
    for model in (blobs.root / "models").iterdir():
        if not is_model_name(model.name) or not model.is_dir():
            continue
        for entry in model.iterdir():
            if entry.name.startswith(".retired-") and VERSION.fullmatch(entry.name[9:]):
                blobs.create(f"models/{model.name}/{entry.name[9:]}/{CLAIM_FILE}",
                             _json({"job": None, "deleted": True}))  # fmt: skip
                entry.unlink(missing_ok=True)
            elif VERSION.fullmatch(entry.name) and (entry / "metadata.json").is_file():
                folder = f"models/{model.name}/{entry.name}"
                try:
                    metadata = _json_object((entry / "metadata.json").read_bytes())
                except FileNotFoundError:  # another process adopted it meanwhile
                    continue
                if metadata is None:
                    # Damaged: left as it is for an operator, never served, and
                    # its number never taken again.
                    log.warning("not adopting %s/metadata.json: not a readable JSON object",
                                folder)  # fmt: skip
                    blobs.create(f"{folder}/{CLAIM_FILE}", _json({"job": None, "deleted": True}))
                    continue
                job = metadata.get("job")
                blobs.create(f"{folder}/{CLAIM_FILE}", _json({"job": job}))
                files = {MODEL_FILE: {"sha256": metadata.get("model_sha256"),
                                      "bytes": (entry / MODEL_FILE).stat().st_size}}  # fmt: skip
                blobs.put(f"{folder}/{MANIFEST_FILE}", _json({**metadata, "files": files}))
                if is_job_id(job):
                    blobs.put(f"models/{model.name}/jobs/{job}",
                              _json({"version": int(entry.name)}))  # fmt: skip
                (entry / "metadata.json").unlink(missing_ok=True)
                adopted.append(folder)
    if adopted:
        log.info("adopted %d model versions of the earlier folder layout", len(adopted))
    return adopted
