"""Publishing under load: no request dropped, `latest` moves to the new version
within a second, and a version that fails to load never replaces a working one."""

from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np
import requests

from models.storage.blobs import open_blobs
from models.storage.model_store import ModelStore
from tests.conftest import API_KEY
from tests.e2e.conftest import Live
from tests.e2e.test_job_lifecycle import submit, upload

ROWS = np.random.default_rng(3).normal(size=(4, 3)).tolist()


class Load:
    """Client threads posting :predict back to back, recording every answer."""

    def __init__(self, live: Live, clients: int = 4) -> None:
        self.url = live.url("/v1/models/swap:predict")
        self.answers: list[tuple[float, int, str | None]] = []
        self.lock = threading.Lock()
        self.running = True
        self.threads = [threading.Thread(target=self._client) for _ in range(clients)]
        for thread in self.threads:
            thread.start()

    def _client(self) -> None:
        with requests.Session() as http:
            http.headers["Authorization"] = f"Bearer {API_KEY}"
            while self.running:
                try:
                    response = http.post(self.url, json={"instances": ROWS}, timeout=10)
                    answer = (time.monotonic(), response.status_code,
                              response.headers.get("Fitserve-Model-Version"))  # fmt: skip
                except requests.RequestException as exc:
                    answer = (time.monotonic(), 0, repr(exc))
                with self.lock:
                    self.answers.append(answer)

    def stop(self) -> list[tuple[float, int, str | None]]:
        self.running = False
        for thread in self.threads:
            thread.join()
        return self.answers

    def first_answer_from(self, version: str) -> float | None:
        with self.lock:
            return next((at for at, _, seen in self.answers if seen == version), None)


def test_publishing_under_load_drops_nothing(live: Live) -> None:
    dataset = upload(live, seed=7)
    first = live.wait_for_job(submit(live, "swap", dataset, epochs=2)["id"])
    assert first["result"]["version"] == 1
    load = Load(live)
    try:
        time.sleep(1.0)
        second = live.wait_for_job(submit(live, "swap", dataset, epochs=3)["id"])
        published = time.monotonic()  # the job reports success after the version is in place
        assert second["result"]["version"] == 2
        deadline = published + 5
        while load.first_answer_from("2") is None and time.monotonic() < deadline:
            time.sleep(0.01)
        moved_at = load.first_answer_from("2")
        assert moved_at is not None, "latest never moved to version 2"
        assert moved_at - published < 1.0

        # A version 3 that cannot load: serving must stay on version 2.
        store = ModelStore(open_blobs(live.settings))
        metadata = store.metadata("swap", 2)
        store.publish("swap", lambda path: path.write_bytes(b"\0broken"), metadata)
        broken_at = time.monotonic()
        time.sleep(1.5)
    finally:
        answers = load.stop()
    statuses = Counter(status for _, status, _ in answers)
    assert statuses == {200: len(answers)}, statuses
    after_broken = Counter(version for at, _, version in answers if at > broken_at + 0.1)
    assert set(after_broken) == {"2"}, after_broken
    assert len(answers) > 100, f"only {len(answers)} requests were made"
    print(f"\nhot swap: {len(answers)} requests, all 200; latest moved to v2 "
          f"{(moved_at - published) * 1000:.0f} ms after the job succeeded")  # fmt: skip
