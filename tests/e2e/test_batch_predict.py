""":batchPredict runs a prediction job on the worker; its result serves every
row, in CSV, NPY or JSON, equal to :predict on the same rows."""

from __future__ import annotations

import io

import numpy as np

from tests.e2e.conftest import Live
from tests.e2e.test_job_lifecycle import samples, submit, upload


def test_batch_predict_over_a_stored_dataset(live: Live) -> None:
    dataset = upload(live, rows=300, seed=11)
    trained = live.wait_for_job(submit(live, "batch", dataset, epochs=2)["id"])
    assert trained["state"] == "succeeded"
    not_a_prediction = live.http.get(live.url(f"/v1/jobs/{trained['id']}/result"))
    assert not_a_prediction.status_code == 404

    response = live.http.post(live.url("/v1/models/batch:batchPredict"), json={"dataset": dataset})
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["kind"] == "predict" and job["version"] == 1
    finished = live.wait_for_job(job["id"])
    assert finished["state"] == "succeeded", finished["error"]
    assert finished["result"] == {"model": "batch", "version": 1, "rows": 300}

    result_url = live.url(f"/v1/jobs/{job['id']}/result")
    as_npy = live.http.get(result_url, headers={"Accept": "application/x-npy"})
    outputs = np.load(io.BytesIO(as_npy.content))
    record = live.http.get(live.url(f"/v1/datasets/{dataset}")).json()
    assert outputs.shape == (record["rows"], 1)
    x = samples(300, 11).tolist()
    direct = live.http.post(live.url("/v1/models/batch/versions/1:predict"),
                            json={"instances": x[:50]}).json()  # fmt: skip
    np.testing.assert_allclose(outputs[:50], direct["predictions"], rtol=1e-5, atol=1e-6)
    as_csv = live.http.get(result_url)  # CSV unless asked otherwise
    assert as_csv.headers["Content-Type"].startswith("text/csv")
    assert len(as_csv.text.strip().splitlines()) == 301
    as_json = live.http.get(result_url, headers={"Accept": "application/json"}).json()
    assert len(as_json["predictions"]) == 300


def test_batch_predict_refuses_a_dataset_of_another_shape(live: Live) -> None:
    dataset = upload(live, rows=40, seed=12)
    live.wait_for_job(submit(live, "batch-shape", dataset, epochs=1)["id"])
    other = live.http.post(live.url("/v1/datasets"), json={"x": [[1.0, 2.0]] * 4,
                                                           "y": [1, 2, 3, 4]}).json()  # fmt: skip
    response = live.http.post(live.url("/v1/models/batch-shape:batchPredict"),
                              json={"dataset": other["id"]})  # fmt: skip
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["dataset"]
