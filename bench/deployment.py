"""A store's fitserve deployment for the training benchmarks: a real worker
and API started on this machine with settings of their own (`Deployment`),
and a job record's time from its start to its end (`seconds`).

Shared by bench.train and bench.search, which runs after bench.train's
tables, so that neither imports the other for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from bench.examples import EXAMPLES, FILES, ensure_data
from bench.stores import KEY, bench_settings
from models.settings import Settings
from models.storage.blobs import open_blobs
from service.local_processes import (
    Service,
    api_answers,
    forget_redis_state,
    free_port,
    settings_environment,
    worker_answers,
)

if TYPE_CHECKING:
    from service.local_processes import SeaweedFS


@dataclass
class Deployment:
    """One store's worker and API."""

    store: str
    settings: Settings
    worker: Service
    api: Service
    url: str
    http: requests.Session = field(default_factory=requests.Session)

    @classmethod
    def start(cls, store: str, folder: Path, server: SeaweedFS | None) -> Deployment:
        folder.mkdir(parents=True)
        settings = bench_settings(folder / "var", server)
        port = free_port()
        environment = settings_environment(settings, port)
        worker = Service.entry_point(["fitserve-worker"], environment, folder / "worker.log")
        api = Service.entry_point(["fitserve-api"], environment, folder / "api.log")
        deployment = cls(store, settings, worker, api, f"http://127.0.0.1:{port}")
        deployment.http.headers["Authorization"] = f"Bearer {KEY}"
        return deployment

    def wait_until_ready(self) -> None:
        self.api.wait_until(api_answers(self.url))
        answers = worker_answers(self.settings.redis_url, self.worker.process.pid)
        self.worker.wait_until(answers, 180)

    def run_job(self, example: str) -> dict[str, Any]:
        """One training job of `example`, to its end; its record, with the
        client's time for the POST (upload, dataset stored, job queued) added."""
        filename, media_type = FILES[example]
        data = (ensure_data() / filename).read_bytes()
        spec_part = (EXAMPLES / f"{example}.json").read_bytes()
        posted = time.perf_counter()
        response = self.http.post(f"{self.url}/v1/jobs", files={
            "spec": ("spec.json", spec_part, "application/json"),
            "file": (filename, data, media_type)})  # fmt: skip
        post_s = time.perf_counter() - posted
        response.raise_for_status()
        job_id = response.json()["id"]
        while (job := self.http.get(f"{self.url}/v1/jobs/{job_id}").json())["state"] not in (
            "succeeded", "failed", "cancelled"):  # fmt: skip
            time.sleep(0.05)
        assert job["state"] == "succeeded", (self.store, job["error"])
        return {**job, "post_s": post_s}

    def check_store(self) -> None:
        """That the jobs' models went where the settings said: a bucket's
        deployment keeps none in its data folder (only its cache)."""
        blobs = open_blobs(self.settings)
        assert blobs.remote == (self.store == "s3"), blobs.url
        assert next(blobs.keys("models/"), None) is not None, f"no models in {blobs.url}"
        if self.store == "s3":
            assert not (self.settings.data_dir / "models").exists(), self.settings.data_dir

    def stop(self) -> None:
        self.api.stop()
        self.worker.stop()
        self.http.close()
        forget_redis_state(self.settings)


def seconds(job: dict[str, Any], start: str = "started_at", end: str = "finished_at") -> float:
    begin, finish = (datetime.fromisoformat(job[key].replace("Z", "+00:00"))
                     for key in (start, end))  # fmt: skip
    return (finish - begin).total_seconds()
