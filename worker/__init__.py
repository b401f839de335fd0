"""The training worker: a Celery process that runs jobs on a CPU or GPU host.

celery_app  make_celery: the one Celery app, from Settings (the API imports it to enqueue)
tasks       the thin Celery tasks: a job id in, the job's state out
runner      running one training or prediction job: claim, train, publish, finish
leases      LeaseKeeper: renews a running job's lease from a thread
heartbeat   Heartbeat: this worker's record in the registry of online workers
sweeper     Sweeper: sends dead workers' jobs (and stranded `auto` jobs) to a queue again
devices     detect_devices: the GPUs this process can use
main        `fitserve-worker`

Imports models (every room) and Celery; never Flask. The runner and the
leases live here rather than in models/jobs because only a worker process runs
jobs: the API reads and writes job state (models.jobs) and nothing more.
"""
