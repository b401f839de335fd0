"""The baseline: what a user writes by hand to serve a `.keras` file. Loads the
model once, calls `model.predict` per request, runs Flask threaded.

    KERAS_BACKEND=tensorflow python bench/baseline_app.py MODEL.keras PORT
"""

import sys

import keras
import numpy as np
from flask import Flask, jsonify, request

model = keras.saving.load_model(sys.argv[1])
app = Flask(__name__)


@app.post("/predict")
def predict():  # type: ignore[no-untyped-def]
    x = np.array(request.get_json()["instances"], dtype="float32")
    return jsonify({"predictions": model.predict(x, verbose=0).tolist()})


@app.get("/ping")
def ping():  # type: ignore[no-untyped-def]
    return "ok"


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[2]), threaded=True)
