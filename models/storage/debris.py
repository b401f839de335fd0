"""What writes cut off (a process killed, a host lost) leave behind, cleared
when a process starts: partial files of a folder store (`.tmp-<hex>`) and of
a bucket's local cache; a bucket's incomplete multipart uploads, whose parts
it keeps (and bills) until aborted; a dataset's arrays without its record
(its upload stopped between the two, models.storage.dataset_files); and this
host's staging folders (`fitserve-dataset-*`, `fitserve-publish-*`), which a
killed process does not remove.

Only what is older than `older_than_s` is taken: another process, here or
on another host, may be writing a younger one right now.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path

from models.storage.blobs import Blobs
from models.storage.dataset_files import DatasetFiles

log = logging.getLogger(__name__)

# A day: far longer than any write takes (an upload is at most 256 MiB by
# default), short enough that debris does not pile up.
DEBRIS_AGE_S = 86400.0
STAGING_PREFIXES = ("fitserve-dataset-", "fitserve-publish-")


def forget_debris(
    blobs: Blobs, older_than_s: float = DEBRIS_AGE_S, staging: Path | None = None
) -> dict[str, int]:
    """Remove the debris older than `older_than_s`; returns how much of each kind."""
    removed = {
        "partial_writes": blobs.forget_partial_writes(older_than_s),
        "incomplete_datasets": len(DatasetFiles(blobs).forget_incomplete(older_than_s)),
        "staging_folders": _forget_staging(staging or Path(tempfile.gettempdir()), older_than_s),
    }
    if any(removed.values()):
        log.info("removed what interrupted writes left: %s", removed)
    return removed


def _forget_staging(folder: Path, older_than_s: float) -> int:
    cutoff = time.time() - older_than_s
    removed = 0
    for prefix in STAGING_PREFIXES:
        for path in folder.glob(f"{prefix}*"):
            try:
                if path.is_dir() and path.stat().st_mtime < cutoff:
                    shutil.rmtree(path)
                    removed += 1
            except OSError:  # removed meanwhile, or not ours to remove
                continue
    return removed


def forget_debris_at_start(blobs: Blobs) -> None:
    """forget_debris, which must not stop a start: a store that is away now
    is the readiness probe's to report, and the next start tries again."""
    try:
        forget_debris(blobs)
    except Exception as exc:  # the store's client raises its own errors
        log.warning("what interrupted writes left was not removed: %s", exc)
