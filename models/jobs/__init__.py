"""Job state shared by the API and the workers, in Redis.

store    JobStore: one hash per job, state changes and claims as Lua scripts, leases
workers  WorkerRegistry: the online workers, from their heartbeats

Imports only the base (and redis). Running a job is the worker's
(worker.runner).
"""
