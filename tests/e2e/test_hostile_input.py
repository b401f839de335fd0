"""Hostile input through the production server (granian) with a real worker:
path tricks in every name and id, and uploads built to exhaust the parsers.

Each is a 4xx whose JSON error says what was wrong (`Received: ...`), never a
5xx; nothing is written outside the store; and afterwards the API and the
worker still serve and train. Refusal times are printed (`pytest -s`), never
asserted: timed assertions fail on slow machines.
"""

from __future__ import annotations

import http.client
import io
import itertools
import json
import string
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import numpy as np
import pytest

from tests.e2e.conftest import UPLOAD_LIMIT, Live

# Percent-encoded path segments, sent as they are (http.client, no normalising
# of `..`), and the strings they decode to, for the `model` field of a job.
HOSTILE_SEGMENTS = {
    "dot-dot": "..",
    "encoded-dot-dot": "%2e%2e",
    "encoded-slashes": "..%2f..%2fetc",
    "nul": "iris%00",
    "backslashes": "..%5c..%5cetc",
    "raw-backslash": "..\\..\\etc",
    "fullwidth-full-stops": quote("\uff0e\uff0e"),
    "right-to-left-override": quote("\u202esirI"),
    "cyrillic-homoglyph": quote("\u0456ris"),  # CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I
    "very-long": "a" * 1000,
}
# Every route that takes a name or an id ({} is where it goes).
ROUTES = [
    ("GET", "/v1/models/{}"),
    ("GET", "/v1/models/{}/metadata"),
    ("GET", "/v1/models/{}/versions/1"),
    ("GET", "/v1/models/iris/versions/{}"),
    ("POST", "/v1/models/{}:predict"),
    ("POST", "/v1/models/{}/versions/1:predict"),
    ("POST", "/v1/models/{}:batchPredict"),
    ("DELETE", "/v1/models/{}/versions/1"),
    ("DELETE", "/v1/models/iris/versions/{}"),
    ("GET", "/v2/models/{}"),
    ("GET", "/v2/models/{}/ready"),
    ("POST", "/v2/models/{}/infer"),
    ("POST", "/v2/models/{}/versions/1/infer"),
    ("GET", "/v1/datasets/{}"),
    ("DELETE", "/v1/datasets/{}"),
    ("GET", "/v1/jobs/{}"),
    ("GET", "/v1/jobs/{}/result"),
    ("POST", "/v1/jobs/{}:cancel"),
]
TINY_SPEC: dict[str, Any] = {
    "input_shape": [2],
    "layers": [{"type": "dense", "units": 4, "activation": "relu"}, {"type": "dense", "units": 1}],
    "compile": {"loss": "mse", "optimizer": "adam"},
    "fit": {"epochs": 2, "batch_size": 4},
    "seed": 0,
}
SMALL_CSV = b"a,b,y\n" + b"".join(f"{i},{i % 3},{i * 0.5}\n".encode() for i in range(16))


def raw_request(
    live: Live, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, str, bytes]:
    """(status, Content-Type, body) of a request whose path goes out byte for byte."""
    address = urlsplit(live.base_url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=120)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        sent = {"Authorization": live.http.headers["Authorization"],
                "Content-Length": str(len(body)), **(headers or {})}  # fmt: skip
        for name, value in sent.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        connection.close()


def refusal_problem(status: int, content_type: str, body: bytes) -> str | None:
    """What is wrong with a refusal, or None when it is a 4xx that says what was wrong."""
    if not 400 <= status < 500:
        return f"status {status}"
    if content_type != "application/json":
        return f"Content-Type {content_type!r}"
    error = json.loads(body)["error"]
    # On /v2 URLs the Open Inference Protocol's shape: `error` is the message itself.
    message = error if isinstance(error, str) else error["message"]
    return None if "Received:" in message else f"a message that names nothing: {message!r}"


def tree(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


def test_hostile_names_and_ids_are_4xx_that_say_what_was_wrong(live: Live) -> None:
    live_folder = live.settings.data_dir.parent  # holds the store and the services' logs
    before = tree(live_folder), set(live_folder.parent.iterdir())
    problems = []
    for (label, segment), (method, route) in itertools.product(HOSTILE_SEGMENTS.items(), ROUTES):
        path = route.format(segment)
        body = b'{"instances": [[1, 2]], "dataset": "x"}' if method == "POST" else b""
        status, content_type, answer = raw_request(
            live, method, path, body, {"Content-Type": "application/json"}
        )
        if problem := refusal_problem(status, content_type, answer):
            problems.append(f"{label}: {method} {path[:80]} -> {problem}")
    assert not problems, "\n".join(problems)
    assert (tree(live_folder), set(live_folder.parent.iterdir())) == before


def test_a_name_past_the_servers_request_line_limit_is_a_414(live: Live) -> None:
    """The server (granian) refuses a request target of 64 KiB or more itself,
    before the app sees it; a shorter long name is the app's JSON 404: a 4xx
    either way, never a 5xx or a hang."""
    status, _, _ = raw_request(live, "GET", "/v1/models/" + "a" * 70_000)
    assert status == 414
    status, content_type, answer = raw_request(live, "GET", "/v1/models/" + "a" * 5000)
    assert not refusal_problem(status, content_type, answer)
    assert len(answer) < 1000  # the message quotes the start of the name, not all of it


def test_hostile_model_names_in_a_job_are_refused(live: Live) -> None:
    dataset = upload(live, SMALL_CSV, "text/csv")
    jobs_before = job_ids(live)
    for label, segment in HOSTILE_SEGMENTS.items():
        name = unquote(segment)
        body = {"model": name, "spec": TINY_SPEC, "dataset": dataset}
        response = live.http.post(live.url("/v1/jobs"), json=body)
        assert response.status_code == 422, (label, response.text)
        error = response.json()["error"]
        assert error["details"][0]["loc"] == ["model"], (label, error)
        assert "Received:" in error["message"], (label, error)
        multipart = live.http.post(
            live.url("/v1/jobs"),
            files={"spec": (None, json.dumps({"model": name, "spec": TINY_SPEC})),
                   "file": ("small.csv", SMALL_CSV)},
        )  # fmt: skip
        assert multipart.status_code == 422, (label, multipart.text)
    assert job_ids(live) == jobs_before


def job_ids(live: Live) -> list[str]:
    return [job["id"] for job in live.http.get(live.url("/v1/jobs")).json()["jobs"]]


# --- hostile uploads ----------------------------------------------------------------------


def csv_of_a_million_columns() -> bytes:
    """One header row and one data row, 10^6 columns each, under the upload limit.

    10^6 distinct names do not fit in 4 MiB, so the first ~90,000 are distinct
    and then they repeat: every distinct name is compared before the repeat
    is found (quadratic work once, for a header check written naively)."""
    alphabet = string.ascii_letters + string.digits
    distinct = (
        "".join(letters)
        for size in (1, 2, 3)
        for letters in itertools.product(alphabet, repeat=size)
    )
    names = [*itertools.islice(distinct, 90_000), *itertools.repeat("a", 10**6 - 90_000)]
    return (",".join(names) + "\n" + ",".join(["0"] * 10**6) + "\n").encode()


def npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue()


def npz_of(members: dict[str, Iterator[bytes]]) -> bytes:
    """A zip-deflated archive whose members are written from chunks (never whole in memory)."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as bundle:
        for name, chunks in members.items():
            with bundle.open(name, "w", force_zip64=True) as member:
                for chunk in chunks:
                    member.write(chunk)
    return archive.getvalue()


def zeros_npy(shape: tuple[int, ...], chunk: int = 2**24) -> Iterator[bytes]:
    """An honest .npy of float64 zeros: the header, then all of its data."""
    yield npy_header(shape)
    left = int(np.prod(shape)) * 8
    while left > 0:
        yield bytes(min(left, chunk))
        left -= chunk


def small_y(rows: int) -> Iterator[bytes]:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(rows))
    yield buffer.getvalue()


def json_lists_nested_too_deep_for_the_shape_checks() -> bytes:
    """Shallow enough for json.loads, too deep for a shape check that recurses per level."""
    return b'{"x": [' + b"[" * 600 + b"1" + b"]" * 600 + b'], "y": [1]}'


def npz_declaring_80_gb() -> bytes:
    return npz_of({"x.npy": iter([npy_header((10**9, 10)), bytes(64)]), "y.npy": small_y(3)})


def npz_of_256_mib_of_zeros(member: str = "x.npy") -> bytes:
    """Honest headers; deflated to a few hundred KB, 64 times the upload limit unpacked."""
    return npz_of({member: zeros_npy((32, 2**20)), "y.npy": small_y(32)})


# (body builder, media type, filename, words the error message must hold); built
# when the test runs, not when it is collected.
HOSTILE_UPLOADS = [
    pytest.param(csv_of_a_million_columns, "text/csv", "wide.csv",
                 "column 90001 is empty or repeated", id="csv-1e6-columns"),
    pytest.param(lambda: b"a,b\n" + b"0," * 10**6 + b"0\n", "text/csv", "row.csv",
                 "Line 2 has 1000001 fields", id="csv-1e6-field-row"),
    pytest.param(lambda: b"[" * 100_000 + b"]" * 100_000, "application/json", "list.json",
                 "not valid JSON", id="json-nested-lists"),
    pytest.param(lambda: b'{"x":' * 100_000 + b"1" + b"}" * 100_000, "application/json",
                 "object.json", "not valid JSON", id="json-nested-objects"),
    pytest.param(json_lists_nested_too_deep_for_the_shape_checks, "application/json",
                 "deep.json", "nests lists more than 4 deep", id="json-deep-sample"),
    pytest.param(npz_declaring_80_gb, "application/x-npz", "declared.npz",
                 "would unpack to 80,000,000,024 bytes", id="npz-declared-80GB"),
    pytest.param(npz_of_256_mib_of_zeros, "application/x-npz", "zeros.npz",
                 "would unpack to 268,435,712 bytes", id="npz-deflated-256MiB"),
    # numpy also reads a member named plain `x`: a header no bomb check looked at.
    pytest.param(lambda: npz_of_256_mib_of_zeros(member="x"), "application/x-npz",
                 "unnamed.npz", "has no array 'x'", id="npz-member-without-.npy"),
    pytest.param(lambda: npz_of({"x.npy": iter([b"not an array"]), "y.npy": small_y(3)}),
                 "application/x-npz", "bytes.npz", "member 'x.npy' is not a .npy array",
                 id="npz-member-not-an-array"),
]  # fmt: skip


@pytest.mark.parametrize(("build", "media_type", "filename", "words"), HOSTILE_UPLOADS)
def test_a_hostile_upload_is_refused_and_the_service_goes_on(
    live: Live, build: Callable[[], bytes], media_type: str, filename: str, words: str
) -> None:
    body = build()
    assert len(body) < UPLOAD_LIMIT
    boots = api_worker_boots(live)
    started = time.monotonic()
    direct = live.http.post(
        live.url("/v1/datasets"), data=body, headers={"Content-Type": media_type}
    )
    direct_s = time.monotonic() - started
    started = time.monotonic()
    job = live.http.post(
        live.url("/v1/jobs"),
        files={"spec": (None, json.dumps({"model": "hostile", "spec": TINY_SPEC})),
               "file": (filename, body)},
    )  # fmt: skip
    job_s = time.monotonic() - started
    print(
        f"\n{filename} ({len(body):,} bytes): POST /v1/datasets {direct.status_code} in "
        f"{direct_s:.2f} s, multipart POST /v1/jobs {job.status_code} in {job_s:.2f} s"
    )
    for response in (direct, job):
        assert 400 <= response.status_code < 500, response.text[:500]
        message = response.json()["error"]["message"]
        assert words in message and "Received:" in message, message
        # The error names the problem; it does not echo megabytes of the upload back.
        assert len(response.content) < 10_000, len(response.content)
    assert_the_api_goes_on(live)
    assert api_worker_boots(live) == boots, "an API worker process died and was replaced"


def api_worker_boots(live: Live) -> int:
    """How many API worker processes have started: one more means one crashed."""
    log = (live.settings.data_dir.parent / "api.log").read_text(errors="replace")
    return log.count("Spawning worker")  # granian's line for each process it starts


def upload(live: Live, body: bytes, media_type: str) -> str:
    response = live.http.post(
        live.url("/v1/datasets"), data=body, headers={"Content-Type": media_type}
    )
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


def assert_the_api_goes_on(live: Live) -> None:
    assert live.http.get(live.url("/healthz")).json() == {"status": "ok"}
    upload(live, SMALL_CSV, "text/csv")


@pytest.mark.parametrize(
    ("spec_part", "extra_parts", "words"),
    [
        pytest.param("[" * 100_000 + "]" * 100_000, 0, "not valid JSON", id="json-bomb-spec"),
        pytest.param(" " * 600_000, 0, "form limit", id="spec-field-over-form-memory"),
        pytest.param("{}", 1_100, "form limit", id="1100-form-parts"),
    ],
)
def test_a_hostile_multipart_job_form_is_refused(
    live: Live, spec_part: str, extra_parts: int, words: str
) -> None:
    parts: list[tuple[str, Any]] = [("spec", (None, spec_part)), ("file", ("s.csv", SMALL_CSV))]
    parts += [(f"extra{index}", (None, "x")) for index in range(extra_parts)]
    started = time.monotonic()
    response = live.http.post(live.url("/v1/jobs"), files=parts)
    print(f"\nmultipart job form: {response.status_code} in {time.monotonic() - started:.2f} s")
    assert 400 <= response.status_code < 500, response.text[:500]
    message = response.json()["error"]["message"]
    assert words in message and "Received:" in message, message
    assert_the_api_goes_on(live)


@pytest.mark.parametrize("path", ["/v1/datasets", "/v1/jobs"])
def test_a_multipart_part_without_a_name_is_refused(live: Live, path: str) -> None:
    body = b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n"
    response = live.http.post(
        live.url(path), data=body, headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert response.status_code == 400, response.text
    assert "Received: parts ['']" in response.json()["error"]["message"]
    assert_the_api_goes_on(live)


def test_after_hostile_input_the_worker_trains_and_the_model_refuses_bombs(live: Live) -> None:
    dataset = upload(live, SMALL_CSV, "text/csv")
    submitted = live.http.post(
        live.url("/v1/jobs"), json={"model": "after-hostile", "spec": TINY_SPEC, "dataset": dataset}
    )
    assert submitted.status_code == 202, submitted.text
    job = live.wait_for_job(submitted.json()["id"])
    assert job["state"] == "succeeded", job["error"]
    predict = live.url("/v1/models/after-hostile:predict")
    served = live.http.post(predict, json={"instances": [[1, 2]]})  # loads the model first
    assert served.status_code == 200 and len(served.json()["predictions"]) == 1
    # A .npy header that declares terabytes, on 64 bytes of data.
    npy_bomb = npy_header((10**12, 2)) + bytes(64)
    for body, media_type, words in [
        (npy_bomb, "application/x-npy", "only 64 bytes of data follow"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", "not valid JSON"),
    ]:
        started = time.monotonic()
        response = live.http.post(predict, data=body, headers={"Content-Type": media_type})
        print(f"\npredict {media_type}: {response.status_code} in "
              f"{time.monotonic() - started:.2f} s")  # fmt: skip
        assert response.status_code == 400, response.text[:500]
        assert words in response.json()["error"]["message"]
    assert live.http.post(predict, json={"instances": [[1, 2]]}).status_code == 200
