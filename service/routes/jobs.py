"""/v1/jobs: start training jobs, follow them, cancel them.

A search or k-fold job is shown (GET, the listing, a cancel's answer, the
events' snapshot) with each trial's `rank` by the one rule of
models.training.search.ranking, so that clients show it rather than compute
it; the record in Redis holds no rank (it would go stale with every group).
"""

from __future__ import annotations

import json
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    request,
    stream_with_context,
    url_for,
)

from models.errors import Conflict, MalformedBody, NotFound, ValidationFailed, problem, quoted
from models.jobs.store import STATES
from models.records import DatasetRecord
from models.training.class_labels import check_dataset_fits_spec
from models.training.search.ranking import with_ranks
from models.training.search.trial_plan import job_trials, search_json
from models.validation import validate
from service.bodies import dataset_upload, parse_json, request_body
from service.context import services
from service.errors import parsing_request
from service.events import job_events, stream_slots
from service.query import int_arg
from service.render import render_rows
from service.schemas import JobRequest, TrainingSpec

blueprint = Blueprint("jobs", __name__, url_prefix="/v1/jobs")


@blueprint.post("")
def create() -> tuple[Response, int, dict[str, str]]:
    parts = services()
    if request.mimetype == "multipart/form-data":
        training = validate(TrainingSpec, _json_part("spec"))
        body, media_type = dataset_upload(request)
        with parsing_request():
            record, _ = parts.datasets.save(body, media_type, request.args.get("target"))
        job_request = JobRequest(model=training.model, spec=training.spec,
                                 search=training.search, dataset=record["id"])  # fmt: skip
    else:
        job_request = validate(JobRequest, _json_body())
        record = services().dataset_named_in_body(job_request.dataset)
    check_dataset_fits_spec(job_request.spec, record)
    spec = job_request.spec.model_dump(mode="json")
    extra: dict[str, Any] = {}
    if job_request.search is not None or job_request.spec.fit.folds:
        extra = _trials_fields(spec, job_request, record)
    job = parts.queue.submit(
        parts.jobs.create("train", job_request.model, record["id"], spec=spec, extra=extra)
    )
    location = url_for("jobs.show", job_id=job["id"])
    return jsonify(job), 202, {"Location": location}


@blueprint.get("")
def index() -> Response:
    state = request.args.get("state") or None
    if state is not None and state not in STATES:
        raise ValidationFailed(
            f"state must be one of {list(STATES)}. Received: {state!r}",
            details=[problem(["query", "state"], "unknown state")],
        )
    offset = int_arg("page_token", 0, 0, 10**9)
    limit = int_arg("limit", 50, 1, 500)
    page, next_offset = services().jobs.list(state, request.args.get("model"), offset, limit)
    return jsonify({
        "jobs": [with_ranks(job) for job in page],
        "next_page_token": None if next_offset is None else str(next_offset),
    })  # fmt: skip


@blueprint.get("/<job_id>")
def show(job_id: str) -> Response:
    return jsonify(with_ranks(services().jobs.get(job_id)))


@blueprint.get("/<job_id>/result")
def result(job_id: str) -> Response:
    """A prediction job's outputs: CSV by default, NPY or JSON by `Accept`."""
    parts = services()
    job = parts.jobs.get(job_id)
    if job["kind"] != "predict":
        raise NotFound(f"Job {job_id} is a {job['kind']} job; only predict jobs have a result.")
    if job["state"] != "succeeded":
        raise Conflict(
            f"Job {job_id} has no result yet: its result exists once it has succeeded. "
            f"Received: state={job['state']!r}"
        )
    # Streamed a chunk of rows at a time, from the stored file: never whole in memory.
    stored = parts.results.open(job_id)
    try:
        response = render_rows(request, stored, "predictions", default="text/csv")
    except BaseException:
        stored.close()
        raise
    response.call_on_close(stored.close)  # when the stream ends, or the client leaves
    return response


@blueprint.get("/<job_id>/events")
def events(job_id: str) -> Response:
    """Server-Sent Events: the job's epochs and state changes as they happen."""
    stream = job_events(services().jobs, job_id)
    free_slot = stream_slots(current_app).take()  # a 503 when this process has enough open
    response = Response(
        stream_with_context(stream),
        mimetype="text/event-stream",
        # No caching, and no buffering by proxies (nginx honours this header).
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    response.call_on_close(free_slot)  # the server closes it when the stream ends or breaks
    return response


@blueprint.post("/<job_id>:cancel")
def cancel(job_id: str) -> Response:
    return jsonify(with_ranks(services().jobs.request_cancel(job_id)))


def _trials_fields(
    spec: dict[str, Any], job_request: JobRequest, record: DatasetRecord
) -> dict[str, Any]:
    """A search or k-fold job's own fields: every trial drawn and checked as a
    spec and against the dataset now, so a trial the worker could not train is
    a 422 here, not a failed job later."""
    search = search_json(job_request.search) if job_request.search else None
    plan = job_trials(spec, search)
    checked: set[str] = set()
    for trial in plan.trials:
        # The dataset check reads the input shape, the head and the loss: one per distinct set.
        key = json.dumps([trial.spec.input_shape, trial.spec.layers[-1].model_dump(mode="json"),
                          trial.spec.compile.loss])  # fmt: skip
        if key in checked:
            continue
        checked.add(key)
        try:
            check_dataset_fits_spec(trial.spec, record)
        except ValidationFailed as exc:
            raise ValidationFailed(
                f"Trial {trial.index} ({_params_text(trial.params)}) does not fit the dataset: "
                f"{exc.message}",
                [problem(["search", "space", *_blamed_path(trial.params)], exc.message)],
            ) from exc
    return {"search": search, **plan.record()}


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{path}={value!r}" for path, value in params.items()) or "the spec"


def _blamed_path(params: dict[str, Any]) -> list[str]:
    # Only the space's paths change a trial: the first that touches the layers or
    # the loss is the likely cause; the whole space when none does.
    for path in params:
        if path.startswith(("layers.", "compile.loss", "input_shape")):
            return [path]
    return []


def _json_body() -> Any:
    if request.mimetype != "application/json":
        raise MalformedBody(
            "A job is a JSON body (application/json) or a multipart form with 'spec' and "
            f"'file' parts. Received: Content-Type {request.mimetype or 'none'!r}"
        )
    return parse_json(request_body(request), "body")


def _json_part(name: str) -> Any:
    if name in request.form:
        return parse_json(request.form[name].encode(), name)
    if name in request.files:
        return parse_json(request.files[name].read(), name)
    raise MalformedBody(
        f'A multipart job needs a \'{name}\' part holding JSON {{"model", "spec"}}. '
        f"Received: parts {quoted(sorted(request.form) + sorted(request.files))}"
    )
