"""The training worker: a Celery process that runs jobs on a CPU or GPU host.

celery_app   make_celery: the one Celery app, from Settings (the API imports it to enqueue)
queue        JobQueue: the one way a job reaches a queue (the API's and the sweeper's)
tasks        the thin Celery tasks: a job id in, the job's state out
runner       running one training or prediction job: claim, train, publish, finish
context, progress   what a job runs with (WorkerContext); what it writes (JobProgress)
search_coordinator  a job of many trials: its groups spread as group jobs, ranked, refit
group_jobs   one group of a search's trials trained side by side, as a job of its own
leases, heartbeat   a running job's lease renewed; this worker's record among the online
sweeper      dead workers' jobs (and stranded `auto` jobs) sent to a queue again; expiry
devices      detect_devices: the GPUs this process can use
main, supervisor    `fitserve-worker`; `fitserve worker --supervised`, restarted when it dies

Imports models (every room) and Celery; never Flask. Only a worker runs jobs, so the
runner and the leases live here, not in models/jobs (the state both sides share).
"""
