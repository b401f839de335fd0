"""Upload limits through the production server (granian), where a chunked
body arrives with no Content-Length."""

from __future__ import annotations

from collections.abc import Iterator

from tests.e2e.conftest import UPLOAD_LIMIT, Live


def test_an_oversized_chunked_upload_is_refused(live: Live) -> None:
    def chunks() -> Iterator[bytes]:
        # Just over the limit, so the server reads it all and the 413 arrives
        # intact (a server that stops reading a large body resets the connection).
        yield b"a,b\n"
        for _ in range(UPLOAD_LIMIT // (64 * 1024)):
            yield b"1,2\n" * (16 * 1024)
        yield b"1,2\n" * 64

    response = live.http.post(
        live.url("/v1/datasets"), data=chunks(), headers={"Content-Type": "text/csv"}
    )
    assert "Content-Length" not in response.request.headers
    assert response.status_code == 413
    assert f"{UPLOAD_LIMIT} bytes" in response.json()["error"]["message"]
    stored = live.http.get(live.url("/v1/datasets")).json()["datasets"]
    assert all(record["bytes"] < UPLOAD_LIMIT for record in stored)


def test_an_oversized_upload_with_a_length_is_refused(live: Live) -> None:
    body = b"a,b\n" + b"1,2\n" * (UPLOAD_LIMIT // 4 + 1)
    response = live.http.post(
        live.url("/v1/datasets"), data=body, headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 413
