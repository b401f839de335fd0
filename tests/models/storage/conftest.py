"""The storage room's fixtures: every store test runs against a local folder
and against a bucket of the session's SeaweedFS (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.storage.blobs import Blobs, FolderBlobs, S3Blobs, open_blobs
from service.local_processes import SeaweedFS
from tests.conftest import in_bucket, isolated_settings


@pytest.fixture(params=["folder", "s3"], ids=["folder", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Blobs:
    """An empty store: a folder under `tmp_path`, or a fresh bucket whose
    local cache is under `tmp_path`."""
    if request.param == "folder":
        return FolderBlobs(tmp_path / "store")
    server: SeaweedFS = request.getfixturevalue("seaweedfs")
    store = open_blobs(in_bucket(isolated_settings(tmp_path / "var"), server))
    assert isinstance(store, S3Blobs)
    return store


def another_host(blobs: Blobs, cache_dir: Path) -> Blobs:
    """A second handle on the same store, as another host would open it: its
    own client and, for a bucket, its own cache."""
    if isinstance(blobs, FolderBlobs):
        return FolderBlobs(blobs.root)
    assert isinstance(blobs, S3Blobs)
    return S3Blobs(blobs.url, cache_dir, blobs.endpoint_url, blobs.addressing_style)
