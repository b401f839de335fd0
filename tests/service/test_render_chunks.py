"""Predictions written a chunk of rows at a time read the same as written whole."""

from __future__ import annotations

import csv
import io

import numpy as np
import orjson
import pytest
from flask import Flask

from service import render
from service.json_provider import OPTIONS

OUTPUTS = np.random.default_rng(0).random((10, 2), dtype=np.float32)
LABELS = ["yes", "no, maybe", '"quoted"', "=1+1", "plain"] * 2


def answer(accept: str, labels: list[str] | None) -> tuple[bool, bytes]:
    app = Flask(__name__)
    with app.test_request_context(headers={"Accept": accept}) as context:
        response = render.render_predictions(context.request, OUTPUTS, labels, "predictions")
        return response.is_streamed, response.get_data()


@pytest.mark.parametrize("labels", [LABELS, None], ids=["labels", "no labels"])
@pytest.mark.parametrize("accept", render.RESPONSE_TYPES)
def test_a_streamed_answer_reads_as_one_written_whole(
    accept: str, labels: list[str] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    streamed_whole, whole = answer(accept, labels)
    monkeypatch.setattr(render, "CHUNK_ROWS", 3)
    streamed, in_chunks = answer(accept, labels)
    assert (streamed_whole, streamed) == (False, True)
    assert in_chunks == whole
    if accept == "application/json":
        body = {"predictions": OUTPUTS, **({"labels": labels} if labels else {})}
        assert whole == orjson.dumps(body, option=OPTIONS)
    elif accept == "application/x-npy":
        buffer = io.BytesIO()
        np.save(buffer, OUTPUTS)
        assert whole == buffer.getvalue()
    else:
        rows = list(csv.reader(io.StringIO(whole.decode())))
        assert rows[0] == ["output_0", "output_1"] + (["label"] if labels else [])
        values = np.array([row[:2] for row in rows[1:]], np.float32)
        np.testing.assert_array_equal(values, OUTPUTS)  # float32's shortest text reads back
        if labels:
            assert [row[2] for row in rows[1:]] == [render._cell(label) for label in labels]
