from __future__ import annotations

import csv
import io

import numpy as np
from flask import Flask

from service.render import render_predictions


def test_csv_labels_that_a_spreadsheet_would_run_are_escaped() -> None:
    app = Flask(__name__)
    labels = ["=cmd|' /C calc'!A0", "+1", "-2", "@SUM(A1)", "plain"]
    with app.test_request_context(headers={"Accept": "text/csv"}) as context:
        response = render_predictions(context.request, np.zeros((5, 2), "float32"), labels, "p")
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["output_0", "output_1", "label"]
    assert [row[2] for row in rows[1:]] == [
        "'=cmd|' /C calc'!A0",
        "'+1",
        "'-2",
        "'@SUM(A1)",
        "plain",
    ]
