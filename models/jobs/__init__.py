"""Job state the API and the workers share, in Redis (imports only the base).

store        JobStore: what callers use; each of its methods is a part's
keys, codec  the key scheme; the stored format (a JSON value per field)
scripts      JobScripts: the Lua scripts (scripts/*.lua), registered per client
records      a job's hash and history: create, read, update, delete
transitions  state changes; a worker's writes, fenced by its claim's token
leases       Claim: claims, lease renewals, orphans, ownership checks
dispatch     where queued jobs' messages went: what the sweeper asks
listing, totals       listing and counting by index; per-device totals
retention, migration  finished jobs expire; the one migration, run at start
workers      WorkerRegistry: the online workers, from their heartbeats
"""
