"""The domain core: no Flask, no Celery, testable without a server.

Rooms, lowest first; a module imports from its own room, the base, and the
rooms listed before its own, never after:

    base       settings, errors, logs, validation: imports nothing of ours
    storage/   every byte that goes to disk: model versions, dataset files,
               batch results, checkpoint files
    datasets/  uploads (CSV, JSON, NPZ) parsed into checked arrays, stored by content
    layers/    one module per layer kind: its spec, Keras build, numpy serving
               step and what a search may vary in it; the registry of kinds
    training/  the spec, the Keras builder, labels, fit and the fused trainer,
               what a checkpoint holds and when it is saved, the Keras backend
    serving/   loading published versions, the numpy forward pass, request samples
    jobs/      job state and leases in Redis, the online workers' registry

`service/` (HTTP) and `worker/` (Celery, the job runner) sit on top of all of them.
"""
