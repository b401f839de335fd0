"""The training worker: a Celery process that runs jobs on a CPU or GPU host.

celery_app, tasks   the one Celery app (the API imports it to enqueue); thin tasks
runner              one training or prediction job: claim, train, publish, finish
context, progress   what a job runs with (WorkerContext); what it writes (JobProgress)
search_coordinator  a search or k-fold job: groups spread as group jobs, ranked, refit
group_jobs          one group of a search's trials trained side by side, as a job
leases, heartbeat   a running job's lease, renewed; this worker's record among those online
sweeper             sends dead workers' jobs (and stranded `auto` jobs) to a queue again
devices, main       the GPUs this process can use; `fitserve-worker`

Imports models (every room) and Celery; never Flask. Jobs run only in a worker
process: the API reads and writes job state (models.jobs) and nothing more.
"""
