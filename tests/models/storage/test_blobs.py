"""The `Blobs` contract, on a folder and on a bucket alike; then what only
one of them does (a folder's partial files, a bucket's cache and multipart
uploads), `open_blobs` and `check`."""

from __future__ import annotations

import hashlib
import os
import threading
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from models.storage.blobs import FolderBlobs, S3Blobs, check_key, open_blobs
from service.local_processes import free_port
from tests.conftest import isolated_settings
from tests.models.storage.conftest import another_host


def test_put_get_exists_and_replace(blobs):
    blobs.check()
    assert not blobs.exists("a/b/c.bin")
    blobs.put("a/b/c.bin", b"first")
    assert blobs.get("a/b/c.bin") == b"first"
    assert blobs.exists("a/b/c.bin")
    blobs.put("a/b/c.bin", b"second")
    assert blobs.get("a/b/c.bin") == b"second"
    blobs.put("empty", b"")
    assert blobs.get("empty") == b""
    assert blobs.exists("empty")
    with pytest.raises(FileNotFoundError):
        blobs.get("nothing/here")
    # A "folder" (the start of other keys) is no object.
    assert not blobs.exists("a/b")
    with pytest.raises(FileNotFoundError):
        blobs.get("a/b")


def test_put_file(blobs, tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"from a file")
    blobs.put_file("files/one", source)
    assert blobs.get("files/one") == b"from a file"
    source.write_bytes(b"changed")
    blobs.put_file("files/one", source)
    assert blobs.get("files/one") == b"changed"


KEYS = ["a/b/c", "a/b/d/e", "a/bc", "a/x", "ab", "b"]


def test_keys_and_children_by_prefix(blobs):
    assert sorted(blobs.keys("")) == []
    assert blobs.children("") == []
    for key in KEYS:
        blobs.put(key, key.encode())
    assert sorted(blobs.keys("")) == KEYS
    assert sorted(blobs.keys("a/")) == ["a/b/c", "a/b/d/e", "a/bc", "a/x"]
    assert sorted(blobs.keys("a/b/")) == ["a/b/c", "a/b/d/e"]
    # A prefix may end inside a segment.
    assert sorted(blobs.keys("a/b")) == ["a/b/c", "a/b/d/e", "a/bc"]
    assert sorted(blobs.keys("a")) == ["a/b/c", "a/b/d/e", "a/bc", "a/x", "ab"]
    assert sorted(blobs.keys("a/b/d/")) == ["a/b/d/e"]
    assert sorted(blobs.keys("nothing/")) == []
    assert sorted(blobs.keys("a/z")) == []
    # children: the distinct next segments under a folder.
    assert blobs.children("") == ["a", "ab", "b"]
    assert blobs.children("a/") == ["b", "bc", "x"]
    assert blobs.children("a/b/") == ["c", "d"]
    assert blobs.children("nothing/") == []


@pytest.mark.parametrize("blobs", ["folder"], indirect=True)  # a bucket has no sibling to reach
def test_keys_refuses_a_prefix_that_leaves_the_store(blobs, tmp_path):
    (tmp_path / "sibling").mkdir()
    (tmp_path / "sibling" / "secret").write_bytes(b"not the store's")
    blobs.put("k", b"x")
    for prefix in ("../", "../sib", "/abs", ".hidden/", "a/../../"):
        with pytest.raises(ValueError, match="Not a valid storage key"):
            list(blobs.keys(prefix))
        with pytest.raises(ValueError, match="Not a valid storage key"):
            blobs.children(prefix)


def test_delete(blobs):
    blobs.put("a/b/c", b"x")
    blobs.put("a/d", b"y")
    blobs.delete("a/b/c")
    assert sorted(blobs.keys("")) == ["a/d"]
    blobs.delete("a/b/c")  # missing: nothing happens
    blobs.delete("never/was")
    blobs.delete("a/d")
    assert sorted(blobs.keys("")) == []


def test_a_folder_store_leaves_no_empty_folders(tmp_path):
    blobs = FolderBlobs(tmp_path / "store")
    blobs.put("a/b/c/d", b"x")
    blobs.put("a/e", b"y")
    blobs.delete("a/b/c/d")
    assert [p.relative_to(blobs.root).as_posix() for p in sorted(blobs.root.rglob("*"))] == [
        "a",
        "a/e",
    ]
    blobs.delete("a/e")
    assert blobs.root.is_dir()  # the root stays
    assert list(blobs.root.iterdir()) == []


def test_a_folder_store_hides_its_partial_files(tmp_path):
    blobs = FolderBlobs(tmp_path / "store")
    blobs.put("a/b", b"x")
    # What a writer that died mid-write leaves behind.
    (blobs.root / "a" / ".tmp-0123").write_bytes(b"half")
    (blobs.root / ".tmp-dir").mkdir()
    (blobs.root / ".tmp-dir" / "c").write_bytes(b"half")
    assert sorted(blobs.keys("")) == ["a/b"]
    assert blobs.children("") == ["a"]
    # And a write leaves none.
    blobs.put("a/c", b"y")
    assert blobs.create("a/d", b"z")
    assert not blobs.create("a/d", b"z")
    assert sorted(p.name for p in (blobs.root / "a").iterdir()) == [".tmp-0123", "b", "c", "d"]


def test_create_only_when_absent(blobs, tmp_path):
    other = another_host(blobs, tmp_path / "other-cache")
    assert blobs.create("c/claim.json", b"mine")
    assert not blobs.create("c/claim.json", b"again")
    assert not other.create("c/claim.json", b"theirs")  # another host sees it too
    assert other.get("c/claim.json") == b"mine"
    other.delete("c/claim.json")
    assert not blobs.exists("c/claim.json")
    assert blobs.create("c/claim.json", b"after a delete")


def test_create_is_exactly_once_under_concurrency(blobs):
    # (SeaweedFS makes contending conditional creates wait on a lock, in steps
    # of about a second: this takes a few seconds on the bucket.)
    barrier = threading.Barrier(20)
    won: list[tuple[int, bool]] = []

    def create(index: int) -> None:
        barrier.wait()
        won.append((index, blobs.create("race/claim.json", f"{index}".encode())))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [index for index, created in won if created]
    assert len(won) == 20
    assert len(winners) == 1
    assert blobs.get("race/claim.json") == f"{winners[0]}".encode()


@pytest.mark.parametrize("blobs", ["s3"], indirect=True)  # a folder copies it: nothing to see
def test_a_large_file_goes_up_in_parts_and_reads_back_equal(blobs, tmp_path):
    source = tmp_path / "large.bin"
    block = os.urandom(1 << 20)
    with source.open("wb") as handle:
        for index in range(70):  # 70 MiB: above the 64 MiB multipart threshold
            handle.write(bytes([index]) + block[1:])
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    multipart: list[str] = []
    blobs.client.meta.events.register(
        "before-parameter-build.s3.CreateMultipartUpload",
        lambda params, **kwargs: multipart.append(params["Key"]),
    )
    blobs.put_file("datasets/large", source)
    assert multipart == ["store/datasets/large"]
    assert hashlib.sha256(blobs.get("datasets/large")).hexdigest() == digest


def test_local_file(blobs, tmp_path):
    blobs.put("models/m/1/model.keras", b"weights")
    path = blobs.local_file("models/m/1/model.keras")
    assert path.read_bytes() == b"weights"
    with pytest.raises(FileNotFoundError):
        blobs.local_file("models/m/2/model.keras")
    if isinstance(blobs, FolderBlobs):
        assert path == blobs.root / "models/m/1/model.keras"  # the file itself
    else:
        assert path == blobs.cache_dir / "models/m/1/model.keras"  # a cached copy
        assert path.is_relative_to(tmp_path)
        # Downloaded once: a cached copy is not asked of the store again.
        blobs.delete("models/m/1/model.keras")
        assert blobs.local_file("models/m/1/model.keras").read_bytes() == b"weights"
        # And a failed download leaves no partial file in the cache.
        cached = [p for p in blobs.cache_dir.rglob("*") if p.is_file()]
        assert cached == [path]


BAD_KEYS = ["../x", "a/../../x", "/abs", ".hidden", "a/.tmp-1", "", "a//b", "a/", "a b", "a\nb",
            "..", "."]  # fmt: skip


@pytest.mark.parametrize("key", BAD_KEYS)
def test_check_key_refuses(key):
    with pytest.raises(ValueError, match="Not a valid storage key"):
        check_key(key)


def test_every_operation_checks_its_key(blobs):
    # One test, not one per key: each bucket costs a fraction of a second.
    calls = [
        (blobs.put, b"x"), (blobs.create, b"x"), (blobs.get,), (blobs.exists,),
        (blobs.delete,), (blobs.local_file,),
    ]  # fmt: skip
    for key in BAD_KEYS:
        for method, *rest in calls:
            with pytest.raises(ValueError, match="Not a valid storage key"):
                method(key, *rest)
    assert sorted(blobs.keys("")) == []


@pytest.mark.parametrize("key", ["a", "a/b/c.json", "models/iris/12/model.keras", "x=1+y@z_-.v"])
def test_good_keys_pass(key):
    assert check_key(key) == key


def test_open_blobs_without_a_store_url_is_the_data_folder(tmp_path):
    settings = isolated_settings(tmp_path / "var")
    blobs = open_blobs(settings)
    assert isinstance(blobs, FolderBlobs)
    assert blobs.root == tmp_path / "var"
    assert not blobs.remote


def test_open_blobs_of_a_folder_url(tmp_path):
    for url in (str(tmp_path / "elsewhere"), f"file://{tmp_path / 'elsewhere'}"):
        settings = isolated_settings(tmp_path / "var").model_copy(update={"store_url": url})
        blobs = open_blobs(settings)
        assert isinstance(blobs, FolderBlobs)
        assert blobs.root == tmp_path / "elsewhere"


def test_open_blobs_of_a_bucket_url(tmp_path):
    settings = isolated_settings(tmp_path / "var").model_copy(
        update={"store_url": "s3://bucket/some/prefix"}
    )
    blobs = open_blobs(settings)
    assert isinstance(blobs, S3Blobs)
    assert blobs.remote
    assert (blobs.bucket, blobs.prefix) == ("bucket", "some/prefix")
    assert blobs.cache_dir == settings.cache_dir
    assert blobs.addressing_style == "path"


@pytest.mark.parametrize("url", ["http://x", "https://host/bucket", "gs://bucket/p"])
def test_open_blobs_refuses_other_schemes(tmp_path, url):
    settings = isolated_settings(tmp_path / "var").model_copy(update={"store_url": url})
    with pytest.raises(ValueError, match="Received"):
        open_blobs(settings)


@pytest.mark.parametrize("url", ["s3://", "s3:///prefix", "http://bucket/p"])
def test_s3_blobs_refuses_a_url_without_a_bucket(tmp_path, url):
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        S3Blobs(url, tmp_path)


def test_prefixes_keep_stores_in_one_bucket_apart(seaweedfs, tmp_path):
    bucket = f"fitserve-{uuid.uuid4().hex[:12]}"
    whole = S3Blobs(f"s3://{bucket}", tmp_path / "0", seaweedfs.endpoint_url)
    one = S3Blobs(f"s3://{bucket}/one", tmp_path / "1", seaweedfs.endpoint_url)
    two = S3Blobs(f"s3://{bucket}/two/", tmp_path / "2", seaweedfs.endpoint_url)
    one.put("k", b"1")
    two.put("k", b"2")
    assert (one.get("k"), two.get("k")) == (b"1", b"2")
    assert list(one.keys("")) == ["k"]
    assert sorted(whole.keys("")) == ["one/k", "two/k"]
    assert whole.get("two/k") == b"2"


def raw_client(endpoint_url: str):
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url)


def test_s3_blobs_creates_its_bucket_on_first_use(seaweedfs, tmp_path):
    bucket = f"fitserve-{uuid.uuid4().hex[:12]}"
    client = raw_client(seaweedfs.endpoint_url)
    with pytest.raises(ClientError):
        client.head_bucket(Bucket=bucket)
    # Two hosts starting at once on a missing bucket: both make it, or find it
    # made. (check() only asks for the bucket: SeaweedFS would make one on a PUT.)
    handles = [
        S3Blobs(f"s3://{bucket}/p", tmp_path / str(i), seaweedfs.endpoint_url) for i in range(2)
    ]
    errors: list[BaseException] = []

    def first_use(index: int) -> None:
        try:
            handles[index].check()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(i,)) for i in range(len(handles))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    client.head_bucket(Bucket=bucket)
    handles[1].put("k", b"x")
    # A store on a bucket that is already there uses it as it is.
    again = S3Blobs(f"s3://{bucket}/p", tmp_path / "again", seaweedfs.endpoint_url)
    assert again.get("k") == b"x"


def test_a_failed_first_use_still_creates_the_bucket_later(seaweedfs, tmp_path, monkeypatch):
    bucket = f"fitserve-{uuid.uuid4().hex[:12]}"
    blobs = S3Blobs(f"s3://{bucket}/p", tmp_path / "cache", seaweedfs.endpoint_url)
    ensure = blobs._ensure_bucket
    calls: list[int] = []

    def down_the_first_time(client) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("the server is not up yet")
        ensure(client)

    monkeypatch.setattr(blobs, "_ensure_bucket", down_the_first_time)
    with pytest.raises(ConnectionError):
        blobs.check()
    blobs.check()  # the server is up now: the bucket is made, as on a first use
    assert len(calls) == 2


def test_check_of_a_folder_that_cannot_be_written(tmp_path):
    (tmp_path / "a-file").write_bytes(b"")
    with pytest.raises(OSError):
        FolderBlobs(tmp_path / "a-file").check()
    with pytest.raises(OSError):
        FolderBlobs(tmp_path / "a-file" / "below").check()


def test_check_of_a_bucket_whose_server_does_not_answer(tmp_path):
    # Nothing listens on a free port: refused at once (four attempts, well under 5 s).
    blobs = S3Blobs("s3://bucket/p", tmp_path, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(Exception, match="Could not connect"):
        blobs.check()
