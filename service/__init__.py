"""HTTP: the Flask app, its routes, and the command line that talks to it.

app             create_app(settings): builds the parts once (context.Services), registers the rest
routes/         one blueprint per resource: datasets, jobs, models (TF Serving), v2 (Open
                Inference Protocol), ops (health, readiness, workers), docs, dashboard
errors          each error code's HTTP status, the HTTP-only errors, where a problem is in a request
error_handlers  every error as API.md's JSON body
auth            API keys; bodies, converters, schemas, render: reading requests, writing answers
openapi         /openapi.json from the routes and the pydantic models that validate them
events, metrics Server-Sent Events for a job; Prometheus metrics across the server's processes
main            `fitserve-api` (granian), and `app()`, the app each of its processes builds
cli, client     the `fitserve` command and its HTTP client (ClientSettings from FITSERVE_*)
local_processes starting the entry points as local processes (the e2e tests, the benchmarks)

Imports models (every room), worker.celery_app and worker.queue (to send jobs), and Flask.
"""
