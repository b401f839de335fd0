"""The error tree meets HTTP in one place (service.errors): every error class
has a status through its code, and a parser's problems are placed in the
request by the route that handed it its input."""

from __future__ import annotations

import inspect

import pytest

from models import errors
from models.datasets import DatasetStore
from models.serving import forward, samples
from models.storage.blobs import FolderBlobs
from service import client
from service import errors as http_errors
from service.errors import REQUEST_PLACES, STATUS_BY_CODE, http_status, parsing_request

CSV = "text/csv"


def every_error_class() -> list[type[errors.FitserveError]]:
    modules = (errors, forward, client, http_errors)
    found = {cls for module in modules for _, cls in inspect.getmembers(module, inspect.isclass)
             if issubclass(cls, errors.FitserveError)}  # fmt: skip
    return sorted(found, key=lambda cls: cls.__name__)


def test_every_error_is_in_the_one_tree_and_its_docstring() -> None:
    tree = errors.__doc__ or ""
    for cls in every_error_class():
        assert cls.__name__ in tree, f"{cls.__name__} is missing from models/errors.py's tree"


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.MalformedBody("x"), 400),
        (errors.NotFound("x"), 404),
        (errors.SpecError(("layers", 0), "x"), 422),
        (errors.InvalidDataset("x"), 422),
        (errors.UnsupportedMediaType("x"), 415),
        (errors.ServiceUnavailable("x"), 503),
        (errors.JobCancelled("x"), 500),  # never meant for HTTP: a 500 if it ever got there
        (forward.UnsupportedLayer("x"), 500),
    ],
)
def test_a_status_comes_from_the_code_or_the_nearest_ancestor_with_one(
    error: errors.FitserveError, status: int
) -> None:
    assert http_status(error) == status


def test_no_domain_error_carries_a_status() -> None:
    for cls in every_error_class():
        assert "status" not in vars(cls), cls


def test_every_status_code_names_a_class_of_the_tree() -> None:
    codes = {cls.code for cls in every_error_class()}
    assert set(STATUS_BY_CODE) <= codes


def test_a_dataset_parser_locates_problems_inside_the_body_and_the_route_adds_body(
    tmp_path,
) -> None:
    store = DatasetStore(FolderBlobs(tmp_path))
    body = b"a,b,label\n1,2,x\n3,oops,y\n"
    with pytest.raises(errors.InvalidDataset) as parsed:
        store.save(body, CSV)
    assert parsed.value.details[0]["loc"] == ["line", 3, "b"]
    with pytest.raises(errors.InvalidDataset) as placed, parsing_request():
        store.save(body, CSV)
    assert placed.value.details[0]["loc"] == ["body", "line", 3, "b"]


@pytest.mark.parametrize(
    ("call", "loc"),
    [
        (lambda store: store.save(b"a,b\n1,2\n", "text/html"), ["header", "Content-Type"]),
        (lambda store: store.save(b"a,b\n1,2\n3,4\n", CSV, "price"), ["query", "target"]),
        (lambda store: store.get("0" * 24), ["path", "dataset_id"]),
    ],
    ids=["media type", "target column", "dataset id"],
)
def test_an_error_about_another_input_is_placed_where_that_input_came_from(
    tmp_path, call, loc: list[str]
) -> None:
    with pytest.raises(errors.FitserveError) as placed, parsing_request():
        call(DatasetStore(FolderBlobs(tmp_path)))
    assert placed.value.details[0]["loc"] == loc
    assert placed.value.argument in REQUEST_PLACES


def test_a_csv_of_samples_is_located_by_row_inside_the_body() -> None:
    with pytest.raises(errors.InvalidSample) as placed, parsing_request():
        samples.from_csv(b"1,2\n3\n", [2])
    assert placed.value.details[0]["loc"] == ["body", 1]
