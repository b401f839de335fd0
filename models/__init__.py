"""The domain core: no Flask, no Celery, testable without a server. Rooms, lowest
first; a module imports its own room, the base and the rooms listed before
its own, never after (tests/test_layout.py checks):

    base       settings, errors, ids, records, logs, validation, redis_client
    layers/    one module per layer kind: its spec, its Keras build, its numpy serving step
    storage/   every stored byte: versions, datasets, results, checkpoints, the prediction log
    datasets/  uploads (CSV, JSON, NPZ) parsed into checked arrays, stored by content
    training/  the spec, the Keras builder, fit, the fused trainer, searches and folds
    serving/   the catalog, loading and warming versions, the numpy forward pass, exports
    jobs/      job state, claims and leases in Redis, the online workers' registry

`service/` (HTTP) and `worker/` (Celery, the job runner) sit on top of all of them.
"""
