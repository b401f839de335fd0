"""The job store's Redis keys, all under one prefix. Every part of the store
names its keys here, so the scheme a running deployment's data is written in
has one home (tests/models/jobs/test_keys.py holds it to that)."""

from __future__ import annotations

from dataclasses import dataclass

from models.jobs.codec import STATES


@dataclass(frozen=True)
class JobKeys:
    prefix: str

    def job(self, job_id: str) -> str:
        """The job's hash: its record, one JSON value per field."""
        return f"{self.prefix}:job:{job_id}"

    def history(self, job_id: str) -> str:
        """The job's epochs, one JSON object each."""
        return f"{self.prefix}:job:{job_id}:history"

    def lease(self, job_id: str) -> str:
        """The running job's owner token, with an expiry its worker renews."""
        return f"{self.prefix}:lease:{job_id}"

    @property
    def running(self) -> str:
        """The running jobs: where a sweeper looks for lapsed leases."""
        return f"{self.prefix}:running"

    @property
    def queued_by_send(self) -> str:
        """Queued jobs scored by when their message was last sent (or, never
        sent yet, when they were created): where a sweeper looks for jobs
        whose message was lost."""
        return f"{self.prefix}:queued-by-send"

    @property
    def gpu_by_choice(self) -> str:
        """`auto` jobs sent to the GPU queue: the ones to move if the GPUs leave."""
        return f"{self.prefix}:gpu-by-choice"

    def period_marker(self, action: str, job_id: str) -> str:
        """Held by the one sweeper that may `action` the job this period."""
        return f"{self.prefix}:{action}:{job_id}"

    @property
    def index(self) -> str:
        """Every job, scored by when it was created."""
        return f"{self.prefix}:jobs"

    def state_index(self, state: str) -> str:
        return f"{self.prefix}:jobs:state:{state}"

    def model_index(self, model: str) -> str:
        return f"{self.prefix}:jobs:model:{model}"

    @property
    def state_indexes(self) -> list[str]:
        return [self.state_index(state) for state in STATES]

    @property
    def models(self) -> str:
        """The models that have a job index: the ones forget_expired trims."""
        return f"{self.prefix}:jobs:models"

    @property
    def indexed(self) -> str:
        """Set once the jobs of a release before the indexes are indexed."""
        return f"{self.prefix}:jobs:indexed"

    def index_keys(self, job_id: str) -> list[str]:
        """The last KEYS of a script that changes state (scripts/reindex.lua)."""
        return [self.history(job_id), self.index, *self.state_indexes]

    def state_change(self, job_id: str) -> list[str]:
        """The KEYS of claim.lua and transition.lua: the job, its lease, the
        running set, the queued jobs by last send, then `index_keys`."""
        return [self.job(job_id), self.lease(job_id), self.running, self.queued_by_send,
                *self.index_keys(job_id)]  # fmt: skip

    def training(self, device: str) -> str:
        """The device's training totals (a hash)."""
        return f"{self.prefix}:training:{device}"

    @property
    def devices(self) -> str:
        """The devices that have training totals."""
        return f"{self.prefix}:training-devices"

    def device_of(self, training_key: str) -> str:
        """The device whose totals `training_key` holds (`training`'s inverse)."""
        return training_key.rsplit(":training:", 1)[1]
