"""Open event streams are capped per process: one more is a 503 with
Retry-After while the others are open, and a stream's slot is free again
once it closes."""

from __future__ import annotations

import pytest
from flask import Flask

from models.settings import Server, Settings
from service.app import create_app
from service.events import RETRY_AFTER_S


@pytest.fixture
def capped_app(settings: Settings) -> Flask:
    server = Server(max_event_streams=2)
    return create_app(settings.model_copy(update={"server": server, "preload_models": False}))


def test_the_stream_beyond_the_cap_is_a_503_until_one_closes(
    capped_app: Flask, auth: dict[str, str]
) -> None:
    jobs = capped_app.extensions["fitserve"].jobs
    job = jobs.create("train", "watched", "0" * 64, spec={"fit": {"epochs": 3}})
    path = f"/v1/jobs/{job['id']}/events"
    client = capped_app.test_client()
    # Not read: each stays open, holding its slot, as a watching browser's does.
    first, second = (client.get(path, headers=auth, buffered=False) for _ in range(2))
    assert first.status_code == second.status_code == 200
    assert first.mimetype == "text/event-stream"

    refused = client.get(path, headers=auth, buffered=False)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == str(RETRY_AFTER_S)
    assert refused.json["error"]["code"] == "service_unavailable"
    assert "2 event streams" in refused.json["error"]["message"]
    # A missing job is still a plain 404, and other routes still answer.
    assert client.get(f"/v1/jobs/{'0' * 32}/events", headers=auth).status_code == 404
    assert client.get(f"/v1/jobs/{job['id']}", headers=auth).status_code == 200

    # The client went away. (Closed newest first: in one thread the test
    # client's streams nest their request contexts; a server gives each its own.)
    second.close()
    third = client.get(path, headers=auth, buffered=False)
    assert third.status_code == 200
    assert client.get(path, headers=auth, buffered=False).status_code == 503
    third.close()
    first.close()
    # A stream that runs to its end frees its slot too.
    jobs.request_cancel(job["id"])
    for _ in range(3):
        with client.get(path, headers=auth) as ended:  # a server closes it once it ends
            assert ended.status_code == 200
            assert ended.get_data(as_text=True).count("event: ") == 1  # the snapshot, and done
    held = [client.get(path, headers=auth, buffered=False) for _ in range(2)]
    assert [response.status_code for response in held] == [200, 200]
    for response in reversed(held):
        response.close()


def test_the_default_cap_leaves_threads_for_other_requests() -> None:
    server = Server()
    assert 1 <= server.max_event_streams < server.threads
