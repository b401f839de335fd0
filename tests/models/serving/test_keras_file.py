"""Reading a `.keras` file without Keras: the numpy pass read from the file
equals Keras on every layer kind; what the pass does not implement is
refused (Keras then loads the file); a file that is not what its config says
is a load failure that says what is wrong, never a crash."""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

os.environ.setdefault("KERAS_BACKEND", "jax")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from models.errors import InvalidModelFile  # noqa: E402
from models.serving import keras_file  # noqa: E402
from models.serving.forward import UnsupportedLayer  # noqa: E402
from models.serving.keras_file import read_forward_pass  # noqa: E402
from models.training.builder import adapt, build_model  # noqa: E402
from models.training.spec import Activation, ModelSpec  # noqa: E402

GENERATOR = np.random.default_rng(5)


def saved(model: Any, tmp_path: Path) -> Path:
    """`model` with every weight drawn at random (each variable its own
    values, so a variable read in another's place shows), saved."""
    for variable in model.weights:
        if variable.name == "count":
            continue
        values = GENERATOR.normal(size=variable.shape)
        if "variance" in variable.name:
            values = np.abs(values) + 0.1
        variable.assign(values.astype("float32"))
    for layer in model.layers:
        if type(layer).__name__ == "Normalization":
            layer.finalize_state()  # its call reads constants made from its variables
    path = tmp_path / "model.keras"
    model.save(path)
    return path


def spec_model(layers: list[dict[str, Any]], input_shape: list[int]) -> Any:
    spec = {"input_shape": input_shape, "layers": layers,
            "compile": {"loss": "mse"}, "fit": {"epochs": 1}}  # fmt: skip
    return build_model(ModelSpec.model_validate(spec))


def assert_file_matches_keras(model: Any, path: Path, input_shape: list[int]) -> None:
    x = (GENERATOR.normal(size=(64, *input_shape)) * 3).astype("float32")
    expected = np.asarray(model(x, training=False))
    actual = read_forward_pass(path, input_shape)(x)
    assert actual.dtype == np.float32 and actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("activation", list(get_args(Activation)))
def test_dense_with_each_activation_matches_keras(activation: str, tmp_path: Path) -> None:
    model = spec_model([{"type": "dense", "units": 7, "activation": activation},
                        {"type": "dense", "units": 3, "use_bias": False}], [5])  # fmt: skip
    assert_file_matches_keras(model, saved(model, tmp_path), [5])


KINDS = {
    "dropout": [{"type": "dense", "units": 6}, {"type": "dropout", "rate": 0.5}],
    "flatten": [{"type": "flatten"}, {"type": "dense", "units": 6, "activation": "tanh"}],
    "batch_normalization": [{"type": "flatten"}, {"type": "dense", "units": 6},
                            {"type": "batch_normalization", "epsilon": 0.01}],
    "normalization": [{"type": "normalization"}, {"type": "flatten"},
                      {"type": "dense", "units": 6, "activation": "relu"}],
}  # fmt: skip


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_layer_kind_matches_keras(kind: str, tmp_path: Path) -> None:
    input_shape = [3, 4] if kind != "dropout" else [4]
    model = spec_model([*KINDS[kind], {"type": "dense", "units": 2, "activation": "softmax"}],
                       input_shape)  # fmt: skip
    if kind == "normalization":
        adapt(model, GENERATOR.normal(size=(32, *input_shape)).astype("float32") * 10 + 5)
    assert_file_matches_keras(model, saved(model, tmp_path), input_shape)


def test_layers_are_found_by_class_whatever_their_names(tmp_path: Path) -> None:
    """Keras files a layer's weights under its class (dense, dense_1...) in
    the order of the model, not under the name it was given."""
    import keras

    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(5, activation="relu", name="dense_1"),
        keras.layers.BatchNormalization(center=False, name="scaled"),
        keras.layers.Dense(3, name="dense"),
        keras.layers.BatchNormalization(scale=False),
    ])  # fmt: skip
    assert_file_matches_keras(model, saved(model, tmp_path), [4])


def test_a_layer_without_a_numpy_step_is_unsupported(tmp_path: Path) -> None:
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.GaussianNoise(0.1),
                              keras.layers.Dense(2)])  # fmt: skip
    with pytest.raises(UnsupportedLayer, match="GaussianNoise"):
        read_forward_pass(saved(model, tmp_path), [4])


def test_a_functional_model_is_unsupported(tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(UnsupportedLayer, match="not a Sequential"):
        read_forward_pass(saved(model, tmp_path), [4])


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    layers = [{"type": "dense", "units": 5, "activation": "relu"},
              {"type": "batch_normalization"}, {"type": "dense", "units": 2}]  # fmt: skip
    model = spec_model(layers, [4])
    return saved(model, tmp_path)


def rewritten(path: Path, member: str, change: Callable[[bytes], bytes]) -> Path:
    """A copy of the `.keras` file at `path` with `member` changed."""
    copy = path.with_name("changed.keras")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(copy, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            target.writestr(name, change(data) if name == member else data)
    return copy


def weights_changed(path: Path, change: Callable[[h5py.File], None]) -> Path:
    def edit(data: bytes) -> bytes:
        buffer = io.BytesIO(data)
        with h5py.File(buffer, "r+") as h5:
            change(h5)
        return buffer.getvalue()

    return rewritten(path, "model.weights.h5", edit)


def test_a_file_cut_short_is_a_clear_load_failure(model_file: Path) -> None:
    cut = model_file.with_name("cut.keras")
    cut.write_bytes(model_file.read_bytes()[: model_file.stat().st_size // 2])
    with pytest.raises(InvalidModelFile, match="not a .keras archive"):
        read_forward_pass(cut, [4])


def test_bytes_that_are_no_zip_are_a_clear_load_failure(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"not a keras file" * 100)
    with pytest.raises(InvalidModelFile, match="not a .keras archive"):
        read_forward_pass(garbage, [4])


def test_a_damaged_weights_file_is_a_clear_load_failure(model_file: Path) -> None:
    damaged = rewritten(model_file, "model.weights.h5", lambda data: data[:2000])
    with pytest.raises(InvalidModelFile, match="model.weights.h5"):
        read_forward_pass(damaged, [4])


def test_a_config_that_is_not_json_is_a_clear_load_failure(model_file: Path) -> None:
    garbled = rewritten(model_file, "config.json", lambda data: data[:-40])
    with pytest.raises(InvalidModelFile, match="config.json is not JSON"):
        read_forward_pass(garbled, [4])


def test_weights_of_other_shapes_than_the_config_says_are_refused(model_file: Path) -> None:
    def reshape(h5: h5py.File) -> None:
        del h5["layers/dense/vars/0"]
        h5["layers/dense/vars/0"] = np.zeros((4, 6), dtype="float32")

    with pytest.raises(
        InvalidModelFile,
        match=r"vars/0 \(the kernel of layer 'dense.*'\) holds float32 of shape \(4, 6\); "
        r"its config says numbers of shape \(4, 5\)",
    ):
        read_forward_pass(weights_changed(model_file, reshape), [4])


def test_a_variable_more_or_less_than_the_config_says_is_refused(model_file: Path) -> None:
    def add(h5: h5py.File) -> None:
        h5["layers/batch_normalization/vars/4"] = np.zeros(5, dtype="float32")

    def remove(h5: h5py.File) -> None:
        del h5["layers/dense_1/vars/1"]

    with pytest.raises(InvalidModelFile, match="has 5 variables.*says 4"):
        read_forward_pass(weights_changed(model_file, add), [4])
    with pytest.raises(InvalidModelFile, match="has 1 variables.*says 2: kernel, bias"):
        read_forward_pass(weights_changed(model_file, remove), [4])


def test_weights_linked_from_elsewhere_are_refused(model_file: Path, tmp_path: Path) -> None:
    """A soft or external link, or a dataset kept in another file, could read
    any file on the host into the weights."""
    outside = tmp_path / "outside.bin"
    outside.write_bytes(np.ones(20, dtype="float32").tobytes())

    def soft_link(h5: h5py.File) -> None:
        h5["layers/dense/vars/elsewhere"] = np.zeros((4, 5), dtype="float32")
        del h5["layers/dense/vars/0"]
        h5["layers/dense/vars/0"] = h5py.SoftLink("/layers/dense/vars/elsewhere")
        del h5["layers/dense/vars/elsewhere"]

    def external_link(h5: h5py.File) -> None:
        del h5["layers/dense/vars/0"]
        h5["layers/dense/vars/0"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/weights")

    def external_storage(h5: h5py.File) -> None:
        del h5["layers/dense/vars/0"]
        h5["layers/dense/vars"].create_dataset("0", shape=(4, 5), dtype="float32",
                                               external=[(str(outside), 0, 80)])  # fmt: skip

    for change in (soft_link, external_link, external_storage):
        with pytest.raises(InvalidModelFile, match="layers/dense/vars/0"):
            read_forward_pass(weights_changed(model_file, change), [4])


def test_a_model_of_another_input_shape_is_refused(model_file: Path) -> None:
    with pytest.raises(InvalidModelFile, match=r"samples of shape \[None, 4\], not .* \[5\]"):
        read_forward_pass(model_file, [5])


def test_members_larger_than_the_limits_are_not_read(
    model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keras_file, "MAX_CONFIG_BYTES", 100)
    with pytest.raises(InvalidModelFile, match="config.json unpacks to .* at most 100"):
        read_forward_pass(model_file, [4])


def test_a_config_claiming_huge_layers_is_refused_before_any_read(model_file: Path) -> None:
    def huge(data: bytes) -> bytes:
        config = json.loads(data)
        config["config"]["layers"][1]["config"]["units"] = 10**9
        return json.dumps(config).encode()

    with pytest.raises(InvalidModelFile, match="more than 50,000,000 weights"):
        read_forward_pass(rewritten(model_file, "config.json", huge), [4])
