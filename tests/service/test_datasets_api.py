from __future__ import annotations

import io
import os

import numpy as np
from flask.testing import FlaskClient

from models.settings import Settings
from service.app import create_app

CSV = b"a,b,label\n1,2,yes\n3,4,no\n5,6,yes\n"


def test_csv_upload_is_created_then_found_again(client: FlaskClient, auth: dict[str, str]) -> None:
    first = client.post("/v1/datasets", data=CSV, headers={**auth, "Content-Type": "text/csv"})
    assert first.status_code == 201
    record = first.json
    assert record["rows"] == 3 and record["x_shape"] == [2]
    assert record["target"]["kind"] == "binary"
    assert record["target"]["classes"] == ["no", "yes"]
    again = client.post("/v1/datasets", data=CSV, headers={**auth, "Content-Type": "text/csv"})
    assert again.status_code == 200 and again.json["id"] == record["id"]
    assert client.get(f"/v1/datasets/{record['id']}", headers=auth).json == record
    listed = client.get("/v1/datasets", headers=auth).json["datasets"]
    assert [item["id"] for item in listed] == [record["id"]]


def test_target_query_picks_the_label_column(client: FlaskClient, auth: dict[str, str]) -> None:
    body = b"a,label,b\n1,x,2\n3,y,4\n5,z,6\n"
    response = client.post(
        "/v1/datasets?target=label", data=body, headers={**auth, "Content-Type": "text/csv"}
    )
    assert response.status_code == 201, response.json
    assert response.json["target"]["column"] == "label"
    assert response.json["x_shape"] == [2]


def test_multipart_npz_upload(client: FlaskClient, auth: dict[str, str]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, x=np.zeros((4, 8, 8), "float32"), y=np.array([0, 1, 2, 1]))
    response = client.post(
        "/v1/datasets",
        data={"file": (io.BytesIO(buffer.getvalue()), "images.npz", "application/octet-stream")},
        headers=auth,
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.json
    assert response.json["x_shape"] == [8, 8]


def test_bad_rows_are_named_and_nothing_is_stored(
    client: FlaskClient, auth: dict[str, str], settings: Settings
) -> None:
    ragged = b"a,b,label\n1,2,yes\n3,yes\n"
    response = client.post(
        "/v1/datasets", data=ragged, headers={**auth, "Content-Type": "text/csv"}
    )
    assert response.status_code == 422
    assert (
        "Line 3" in response.json["error"]["message"]
        or "line 3" in response.json["error"]["message"]
    )
    assert client.get("/v1/datasets", headers=auth).json["datasets"] == []


def test_unsupported_media_type(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.post("/v1/datasets", data=b"x", headers={**auth, "Content-Type": "image/png"})
    assert response.status_code == 415
    assert response.json["error"]["code"] == "unsupported_media_type"


def test_oversized_upload_is_413(settings: Settings, auth: dict[str, str]) -> None:
    small = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"max_upload_bytes": 1024})}
    )
    client = create_app(small).test_client()
    body = b"a,b\n" + b"1,2\n" * 1000
    with_length = client.post(
        "/v1/datasets", data=body, headers={**auth, "Content-Type": "text/csv"}
    )
    assert with_length.status_code == 413
    assert "1024 bytes" in with_length.json["error"]["message"]
    # The chunked case (no Content-Length) is tested through the production server, in e2e.


def test_unknown_dataset_is_404(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.get("/v1/datasets/0123456789abcdef01234567", headers=auth)
    assert response.status_code == 404
    assert client.delete("/v1/datasets/../../etc", headers=auth).status_code == 404


def test_datasets_come_a_page_at_a_time_newest_first(
    client: FlaskClient, auth: dict[str, str], settings: Settings
) -> None:
    ids = []
    for index in range(5):
        body = f"a,label\n{index},yes\n{index + 1},no\n".encode()
        response = client.post(
            "/v1/datasets", data=body, headers={**auth, "Content-Type": "text/csv"}
        )
        assert response.status_code == 201
        ids.append(response.json["id"])
        # Stored a second apart: a file's time is coarser than an upload's duration.
        record = settings.data_dir / "datasets" / ids[-1] / "record.json"
        os.utime(record, (1_700_000_000 + index, 1_700_000_000 + index))
    pages, token = [], None
    while True:
        query = "?limit=2" + (f"&page_token={token}" if token else "")
        answer = client.get(f"/v1/datasets{query}", headers=auth).json
        pages.append([record["id"] for record in answer["datasets"]])
        token = answer["next_page_token"]
        if token is None:
            break
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [dataset_id for page in pages for dataset_id in page] == ids[::-1]
    # A dataset deleted between pages moves none of the others.
    first = client.get("/v1/datasets?limit=2", headers=auth).json
    client.delete(f"/v1/datasets/{first['datasets'][0]['id']}", headers=auth)
    second = client.get(f"/v1/datasets?limit=2&page_token={first['next_page_token']}",
                        headers=auth).json  # fmt: skip
    assert [record["id"] for record in second["datasets"]] == ids[2::-1][:2]
    everything = client.get("/v1/datasets", headers=auth).json
    assert len(everything["datasets"]) == 4 and everything["next_page_token"] is None


def test_a_bad_page_token_or_limit_is_a_422(client: FlaskClient, auth: dict[str, str]) -> None:
    for query, place in (("page_token=nonsense", "page_token"), ("limit=0", "limit"),
                         ("limit=501", "limit")):  # fmt: skip
        response = client.get(f"/v1/datasets?{query}", headers=auth)
        assert response.status_code == 422, query
        assert response.json["error"]["details"][0]["loc"] == ["query", place]
