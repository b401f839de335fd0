"""`GET /v1/models/{name}/versions/{v}/export`: each format loaded by its own
runtime (Keras, TensorFlow, onnxruntime) answers as `:predict` does, on the
seed programs' models (sigmoid, softmax on a flattened 8x8 input, regression)
and one with batch normalization and dropout, trained for a few epochs on
scikit-learn's bundled data.

The SavedModel and ONNX builds run in a real TensorFlow child process each
(seconds apiece): every model is exported once per module, by concurrent
requests through two apps (two processes' worth of locks on one Redis)."""

from __future__ import annotations

import io
import json
import logging
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sklearn import datasets

from models.serving.exporter import EXPORTS_FOLDER
from models.settings import Settings
from service.app import create_app
from tests.conftest import API_KEY, forget_redis_state, isolated_settings
from worker.context import WorkerContext
from worker.runner import run_training_job

EXAMPLES = Path(__file__).parents[2] / "examples"
PREDICT_KEY = "predict-only-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
FORMATS = ["keras", "saved_model", "onnx"]
ROWS = 24  # compared per model


def seed_spec(example: str, epochs: int = 2) -> dict[str, Any]:
    """The seed program's spec, trained for a couple of epochs only."""
    spec: dict[str, Any] = json.loads((EXAMPLES / f"{example}.json").read_text())["spec"]
    spec["fit"]["epochs"] = epochs
    return spec


def json_dataset(x: np.ndarray, y: list[Any]) -> tuple[bytes, str]:
    return json.dumps({"x": x.tolist(), "y": y}).encode(), "application/json"


def cancer() -> tuple[np.ndarray, tuple[bytes, str]]:
    data = datasets.load_breast_cancer()
    x = ((data.data - data.data.mean(axis=0)) / data.data.std(axis=0))[:200].round(5)
    return x, json_dataset(x, [1 - int(label) for label in data.target[:200]])


def iris() -> tuple[np.ndarray, tuple[bytes, str]]:
    data = datasets.load_iris()
    return data.data, json_dataset(data.data, [str(data.target_names[t]) for t in data.target])


def diabetes() -> tuple[np.ndarray, tuple[bytes, str]]:
    data = datasets.load_diabetes()
    return data.data[:200], json_dataset(data.data[:200], data.target[:200].tolist())


def raw_diabetes() -> tuple[np.ndarray, tuple[bytes, str]]:
    data = datasets.load_diabetes(scaled=False)  # as measured: years, mm Hg, ...
    return data.data[:200], json_dataset(data.data[:200], data.target[:200].tolist())


def normalized_spec() -> dict[str, Any]:
    """A normalization layer first: its adapted statistics must travel as constants."""
    return {
        "input_shape": [10],
        "layers": [{"type": "normalization"}, {"type": "dense", "units": 8, "activation": "relu"},
                   {"type": "dense", "units": 1}],
        "compile": {"loss": "mse", "optimizer": "adam"},
        "fit": {"epochs": 3, "batch_size": 16, "validation_split": 0.2},
        "seed": 4,
    }  # fmt: skip


def digits() -> tuple[np.ndarray, tuple[bytes, str]]:
    data = datasets.load_digits()
    images = (data.images[:300] / 16.0).astype("float32")
    body = io.BytesIO()
    np.savez(body, x=images, y=data.target[:300].astype("int64"))
    return images, (body.getvalue(), "application/x-npz")


# Every activation the builder takes, once: the converters must carry each over.
ACTIVATIONS = [
    "elu", "selu", "swish", "silu", "softplus", "softsign", "leaky_relu", "relu6",
    "hard_sigmoid", "tanh", "exponential", "mish", "sigmoid", "linear", "relu",
]  # fmt: skip


def every_layer_spec() -> dict[str, Any]:
    """Batch normalization and dropout (which inference must turn into a
    scale and shift, and nothing), between every activation there is."""
    return {
        "input_shape": [4],
        "layers": [{"type": "dense", "units": 12, "activation": "gelu"},
                   {"type": "batch_normalization"},
                   {"type": "dropout", "rate": 0.3},
                   *[{"type": "dense", "units": 6, "activation": name} for name in ACTIVATIONS],
                   {"type": "batch_normalization", "momentum": 0.5},
                   {"type": "dense", "units": 3, "activation": "softmax"}],
        "compile": {"loss": "categorical_crossentropy", "optimizer": "adam"},
        "fit": {"epochs": 3, "batch_size": 16},
        "seed": 4,
    }  # fmt: skip


MODELS = {
    "breast-cancer": (lambda: seed_spec("breast_cancer"), cancer),  # sigmoid
    "iris": (lambda: seed_spec("iris"), iris),  # softmax
    "digits": (lambda: seed_spec("digits"), digits),  # flatten, softmax
    "diabetes": (lambda: seed_spec("diabetes"), diabetes),  # regression
    "every-layer": (every_layer_spec, iris),
    "normalized": (normalized_spec, raw_diabetes),
}


def get(client: FlaskClient, url: str, headers: dict[str, str]) -> Any:
    """The response, read whole and closed (a download holds its file open until then)."""
    answer = client.get(url, headers=headers)
    answer.get_data()
    answer.close()
    return answer


class Builds(logging.Handler):
    """Counts the exporter's "exported ... " lines: one per child process."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("exported "):
            self.lines.append(record.getMessage())


@dataclass
class Exported:
    settings: Settings
    app: Flask
    folder: Path
    rows: dict[str, np.ndarray]  # the inputs compared, per model
    predicted: dict[str, np.ndarray]  # what :predict answered for them
    files: dict[tuple[str, str], Path]  # (model, format): the download
    headers: dict[tuple[str, str], dict[str, str]]
    builds: list[str]

    @property
    def client(self) -> FlaskClient:
        return self.app.test_client()


def publish(settings: Settings, client: redis.Redis, app: Flask, model: str) -> np.ndarray:
    make_spec, make_data = MODELS[model]
    x, (body, media_type) = make_data()
    parts = app.extensions["fitserve"]
    record, _ = parts.datasets.save(body, media_type)
    job = parts.jobs.create("train", model, record["id"], spec=make_spec())
    context = WorkerContext.from_settings(settings, client, "test", "cpu", settings.keras_backend)
    finished = run_training_job(job["id"], context)
    assert finished["state"] == "succeeded", finished["error"]
    return np.asarray(x[:ROWS], dtype=np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    folder = tmp_path_factory.mktemp("export")
    settings = isolated_settings(folder / "var").model_copy(
        update={"preload_models": False, "api_keys": [API_KEY, f"predict:{PREDICT_KEY}"]}
    )
    builds = Builds()
    logger = logging.getLogger("models.serving.exporter")
    logger.addHandler(builds)
    level = logger.level
    logger.setLevel(logging.INFO)  # its "exported ..." line is at INFO
    client = redis.Redis.from_url(settings.redis_url)
    # Two apps on one store and Redis: the locks of two API processes.
    apps = [create_app(settings), create_app(settings)]
    try:
        rows, predicted = {}, {}
        for model in MODELS:
            rows[model] = publish(settings, client, apps[0], model)
            answer = apps[0].test_client().post(
                f"/v1/models/{model}/versions/1:predict",
                json={"instances": rows[model].tolist()}, headers=AUTH,
            )  # fmt: skip
            assert answer.status_code == 200, answer.json
            predicted[model] = np.asarray(answer.json["predictions"], dtype=np.float32)
        files, headers = download_all(apps, folder / "downloads")
        yield Exported(settings, apps[0], folder, rows, predicted, files, headers, builds.lines)
    finally:
        logger.removeHandler(builds)
        logger.setLevel(level)
        client.close()
        forget_redis_state(settings)


def download_all(
    apps: list[Flask], into: Path
) -> tuple[dict[tuple[str, str], Path], dict[tuple[str, str], dict[str, str]]]:
    """Every model in every format, each model's three asked for at once, a
    format twice, through both apps: the build must still run once."""
    into.mkdir()
    files, headers = {}, {}
    for model in MODELS:
        asks = [("keras", 0), ("saved_model", 0), ("onnx", 1), ("saved_model", 1), ("onnx", 0)]
        answers: dict[int, Any] = {}

        def ask(index: int, format_name: str, app: Flask, model: str = model,
                answers: dict[int, Any] = answers) -> None:  # fmt: skip
            url = f"/v1/models/{model}/versions/1/export?format={format_name}"
            answers[index] = get(app.test_client(), url, AUTH)

        threads = [threading.Thread(target=ask, args=(index, format_name, apps[app]))
                   for index, (format_name, app) in enumerate(asks)]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for index, (format_name, _) in enumerate(asks):
            answer = answers[index]
            assert answer.status_code == 200, (model, format_name, answer.get_data()[:500])
            suffix = {"keras": ".keras", "saved_model": ".zip", "onnx": ".onnx"}[format_name]
            path = into / f"{model}-{index}{suffix}"
            path.write_bytes(answer.get_data())
            files[(model, format_name)] = path
            headers[(model, format_name)] = dict(answer.headers)
    return files, headers


def test_each_model_is_built_once_for_concurrent_requests(exported: Exported) -> None:
    """Five requests per model (two apps, both built formats asked twice):
    one TensorFlow child process per model, whose files the store keeps."""
    assert len(exported.builds) == len(MODELS), exported.builds
    for model in MODELS:
        (line,) = [line for line in exported.builds if line.startswith(f"exported {model} ")]
        assert "saved_model, onnx" in line
        stored = exported.settings.data_dir / "models" / model / "1" / EXPORTS_FOLDER
        assert sorted(path.name for path in stored.iterdir()) == ["model.onnx", "saved_model.zip"]
        assert (stored / "model.onnx").read_bytes() == exported.files[(model, "onnx")].read_bytes()


def test_downloads_are_named_attachments(exported: Exported) -> None:
    names = {"keras": "iris-1.keras", "saved_model": "iris-1-saved_model.zip",
             "onnx": "iris-1.onnx"}  # fmt: skip
    for format_name, filename in names.items():
        headers = exported.headers[("iris", format_name)]
        assert headers["Content-Disposition"] == f"attachment; filename={filename}"
        assert headers["Fitserve-Model-Version"] == "1"
    assert exported.headers[("iris", "saved_model")]["Content-Type"] == "application/zip"


@pytest.mark.parametrize("model", list(MODELS))
def test_keras_export_is_the_published_file_and_predicts_alike(
    exported: Exported, model: str
) -> None:
    import keras

    published = exported.settings.data_dir / "models" / model / "1" / "model.keras"
    path = exported.files[(model, "keras")]
    assert path.read_bytes() == published.read_bytes()
    loaded = keras.saving.load_model(path, safe_mode=True)
    outputs = keras.ops.convert_to_numpy(loaded(exported.rows[model], training=False))
    np.testing.assert_allclose(outputs, exported.predicted[model], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model", list(MODELS))
def test_saved_model_loads_in_tensorflow_as_tf_serving_lays_it_out(
    exported: Exported, model: str, tmp_path: Path
) -> None:
    import tensorflow as tf

    with zipfile.ZipFile(exported.files[(model, "saved_model")]) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path)
    # TF Serving's model base path holds one folder per version.
    assert {f"{model}/1/saved_model.pb", f"{model}/1/variables/variables.index"} <= names
    assert all(name.startswith(f"{model}/1/") for name in names)
    signature = tf.saved_model.load(str(tmp_path / model / "1")).signatures["serving_default"]
    # The names the API's metadata gives (signature_def): input `x`, output `output_0`.
    _, inputs = signature.structured_input_signature
    assert list(inputs) == ["x"] and inputs["x"].shape.as_list() == [
        None, *exported.rows[model].shape[1:]
    ]  # fmt: skip
    assert list(signature.structured_outputs) == ["output_0"]
    outputs = signature(x=tf.constant(exported.rows[model]))["output_0"].numpy()
    np.testing.assert_allclose(outputs, exported.predicted[model], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model", list(MODELS))
def test_onnx_runs_in_onnxruntime(exported: Exported, model: str) -> None:
    import onnx
    import onnxruntime

    data = exported.files[(model, "onnx")].read_bytes()
    graph = onnx.load_model_from_string(data)
    onnx.checker.check_model(graph, full_check=True)
    assert {prop.key: prop.value for prop in graph.metadata_props} == {
        "fitserve_model": model, "fitserve_version": "1"
    }  # fmt: skip
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    assert [tensor.name for tensor in session.get_inputs()] == ["x"]
    assert [tensor.name for tensor in session.get_outputs()] == ["output_0"]
    # A dynamic batch: one row and all of them.
    for rows in (exported.rows[model][:1], exported.rows[model]):
        (outputs,) = session.run(["output_0"], {"x": rows})
        np.testing.assert_allclose(outputs, exported.predicted[model][: len(rows)],
                                   rtol=1e-5, atol=1e-5)  # fmt: skip


def test_a_predict_only_key_may_export(exported: Exported) -> None:
    """An export reads a model: a GET under /v1/models."""
    answer = get(exported.client, "/v1/models/iris/versions/1/export?format=onnx",
                 {"Authorization": f"Bearer {PREDICT_KEY}"})  # fmt: skip
    assert answer.status_code == 200
    assert answer.get_data() == exported.files[("iris", "onnx")].read_bytes()


def test_keras_is_the_default_format(exported: Exported) -> None:
    answer = get(exported.client, "/v1/models/iris/versions/1/export", AUTH)
    assert answer.status_code == 200
    assert answer.headers["Content-Disposition"] == "attachment; filename=iris-1.keras"


def test_an_unknown_format_is_a_422_naming_the_formats(exported: Exported) -> None:
    answer = exported.client.get("/v1/models/iris/versions/1/export?format=pmml", headers=AUTH)
    assert answer.status_code == 422
    error = answer.json["error"]
    assert error["code"] == "validation_failed"
    assert "'keras', 'saved_model', 'onnx'" in error["message"] and "pmml" in error["message"]
    assert [detail["loc"] for detail in error["details"]] == [["query", "format"]]


@pytest.mark.parametrize(
    ("path", "named"),
    [("/v1/models/iris/versions/9/export?format=onnx", "no version 9"),
     ("/v1/models/nothing/versions/1/export?format=saved_model", "'nothing'")],
)  # fmt: skip
def test_an_unknown_model_or_version_is_a_404(exported: Exported, path: str, named: str) -> None:
    answer = exported.client.get(path, headers=AUTH)
    assert answer.status_code == 404
    assert named in answer.json["error"]["message"]


TINY = {
    "input_shape": [4],
    "layers": [{"type": "dense", "units": 3, "activation": "relu"},
               {"type": "dense", "units": 1, "activation": "sigmoid"}],
    "compile": {"loss": "binary_crossentropy", "optimizer": "adam"},
    "fit": {"epochs": 1, "batch_size": 16},
    "seed": 1,
}  # fmt: skip
TINY_X = np.random.default_rng(3).normal(size=(32, 4)).round(3)
TINY_DATA = json_dataset(TINY_X, (TINY_X[:, 0] > 0).astype(int).tolist())


def test_a_build_past_its_time_limit_is_a_500_saying_so(
    settings: Settings, auth: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """The child is stopped at the limit; the failure is logged, and asked
    again at once it is answered from memory, not with a second build."""
    app = create_app(settings.model_copy(update={"export_time_limit_s": 0.05}))
    tiny = app.extensions["fitserve"]
    record, _ = tiny.datasets.save(*TINY_DATA)
    job = tiny.jobs.create("train", "tiny", record["id"], spec=TINY)
    context = WorkerContext.from_settings(settings, tiny.redis, "t", "cpu", settings.keras_backend)
    assert run_training_job(job["id"], context)["state"] == "succeeded"
    client = app.test_client()
    with caplog.at_level(logging.ERROR, logger="models.serving.exporter"):
        first = client.get("/v1/models/tiny/versions/1/export?format=onnx", headers=auth)
        again = client.get("/v1/models/tiny/versions/1/export?format=saved_model", headers=auth)
    assert first.status_code == 500 and again.status_code == 500
    assert first.json["error"]["code"] == "export_failed"
    message = first.json["error"]["message"]
    assert "did not finish within 0.05 s" in message and "FITSERVE_EXPORT_TIME_LIMIT_S" in message
    assert again.json["error"]["message"] == message
    # One build, logged once (each 500 is logged too, by the error handler).
    builds = [record for record in caplog.records if record.name == "models.serving.exporter"]
    assert [record.getMessage() for record in builds] == [message]
    # Nothing half-built was stored; the .keras file is still there to take.
    assert not (settings.data_dir / "models" / "tiny" / "1" / EXPORTS_FOLDER).exists()
    assert get(client, "/v1/models/tiny/versions/1/export", auth).status_code == 200


def test_deleting_a_version_deletes_its_exports(
    client: FlaskClient, app: Flask, publish: Any, auth: dict[str, str], settings: Settings
) -> None:
    publish("tiny", TINY, *TINY_DATA)
    version = settings.data_dir / "models" / "tiny" / "1"
    # As a build leaves them (their content does not matter to a delete).
    blobs = app.extensions["fitserve"].models.blobs
    blobs.put(f"models/tiny/1/{EXPORTS_FOLDER}/model.onnx", b"built")
    blobs.put(f"models/tiny/1/{EXPORTS_FOLDER}/saved_model.zip", b"built")
    assert client.delete("/v1/models/tiny/versions/1", headers=auth).status_code == 204
    assert not (version / EXPORTS_FOLDER).exists()
    answer = client.get("/v1/models/tiny/versions/1/export?format=onnx", headers=auth)
    assert answer.status_code == 404


def test_an_export_from_a_bucket_is_built_once_and_kept_there(
    s3_settings: Settings, auth: dict[str, str], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """With the store in a bucket, the build goes up beside the version, and
    another host (its own cache folder) downloads it instead of building."""
    first = create_app(s3_settings)
    other_host = create_app(s3_settings.model_copy(update={"data_dir": tmp_path / "other"}))
    parts = first.extensions["fitserve"]
    record, _ = parts.datasets.save(*TINY_DATA)
    job = parts.jobs.create("train", "tiny", record["id"], spec=TINY)
    context = WorkerContext.from_settings(s3_settings, parts.redis, "t", "cpu",
                                          s3_settings.keras_backend)  # fmt: skip
    assert run_training_job(job["id"], context)["state"] == "succeeded"
    url = "/v1/models/tiny/versions/1/export?format=onnx"
    with caplog.at_level(logging.INFO, logger="models.serving.exporter"):
        built = get(first.test_client(), url, auth)
        served = get(other_host.test_client(), url, auth)
    assert built.status_code == 200 and served.status_code == 200, served.json
    keys = sorted(parts.models.blobs.keys(f"models/tiny/1/{EXPORTS_FOLDER}/"))
    assert keys == [f"models/tiny/1/{EXPORTS_FOLDER}/model.onnx",
                    f"models/tiny/1/{EXPORTS_FOLDER}/saved_model.zip"]  # fmt: skip
    assert served.get_data() == built.get_data() == parts.models.blobs.get(keys[0])
    builds = [r for r in caplog.records if r.getMessage().startswith("exported tiny ")]
    assert len(builds) == 1
