"""Requests the routes cannot take: each error says what was wrong and what
was received, the way the API's own errors do."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from models.ids import MODEL_NAME


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/..",
        "/v1/models/Iris:predict",
        "/v2/models/a%00b/ready",
        "/v1/models/" + "a" * 65,
    ],
)
def test_a_path_segment_that_is_no_model_name_is_a_404_that_says_so(
    client: FlaskClient, auth: dict[str, str], path: str
) -> None:
    response = client.post(path, headers=auth) if ":" in path else client.get(path, headers=auth)
    assert response.status_code == 404
    error = response.json["error"]
    # /v2 URLs answer in the Open Inference Protocol's shape: `error` is the message.
    message = error if path.startswith("/v2/") else error["message"]
    assert MODEL_NAME.pattern in message and "Received: '" in message


def test_a_url_no_route_takes_is_a_404_that_names_it(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    response = client.get("/v1/models/x/versions/one", headers=auth)
    assert response.status_code == 404
    assert response.json["error"]["message"] == (
        "No route matches this URL; /openapi.json lists the routes. "
        "Received: GET '/v1/models/x/versions/one'"
    )


def test_a_method_a_route_does_not_take_is_a_405_that_names_those_it_does(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    response = client.put("/v1/datasets", headers=auth)
    assert response.status_code == 405
    assert response.json["error"]["message"] == (
        "This URL takes GET, POST. Received: PUT '/v1/datasets'"
    )


@pytest.mark.parametrize("path", ["/v1/datasets", "/v1/jobs"])
def test_a_multipart_part_without_a_name_is_a_400(
    client: FlaskClient, auth: dict[str, str], path: str
) -> None:
    """Werkzeug keys such a part None, which broke every message that lists the parts."""
    body = b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n"
    response = client.post(
        path, data=body, headers={**auth, "Content-Type": "multipart/form-data; boundary=b"}
    )
    assert response.status_code == 400
    assert "Received: parts ['']" in response.json["error"]["message"]


def test_a_form_field_over_the_form_memory_limit_says_which_limit(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    """The body is far below the upload limit: the 413 must not blame that one."""
    spec = b" " * 600_000  # a field without a filename: held in memory, so limited
    body = b'--b\r\nContent-Disposition: form-data; name="spec"\r\n\r\n' + spec + b"\r\n--b--\r\n"
    response = client.post(
        "/v1/jobs", data=body, headers={**auth, "Content-Type": "multipart/form-data; boundary=b"}
    )
    assert response.status_code == 413
    message = response.json["error"]["message"]
    assert "form limit" in message and "500,000 bytes" in message and "-byte form" in message
