"""HTTP: the Flask app, its routes, and the command line that talks to it.

app, context         create_app(settings): the parts built once (Services), reached per request
wsgi, main           the Flask class served, trimmed; `fitserve-api`, the app under granian
fast_predict         the plainest `:predict`, answered before Flask sees it
routes/              one blueprint per resource: datasets, jobs, models, version_labels,
                     predictions, v2 (Open Inference Protocol), ops, docs, dashboard
auth, converters, query, bodies, schemas    reading requests: keys, URL parts, queries, bodies
render, json_provider                       writing answers: JSON, CSV or NPY by Accept; orjson
errors, error_handlers                      error codes to statuses; every error as API.md's body
openapi, openapi_bodies                     /openapi.json, from the routes and pydantic models
events, metrics      a job's Server-Sent Events; Prometheus metrics and the access log
prediction_sampling, warm_routes, export_download   the HTTP side of the prediction log,
                     of warming a version and of export downloads
cli, client          the `fitserve` command and its HTTP client
local_processes      the entry points started as local processes (e2e tests, benchmarks)

Imports models (every room), worker.celery_app and worker.queue (to send jobs), and Flask.
"""
