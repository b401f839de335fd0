"""The registry is the one place a layer kind is declared: the spec's Layer
union is made from it, every kind in it builds and serves, and a kind
registered here alone flows through the builder and the numpy forward pass."""

from __future__ import annotations

import os
from typing import Any, Literal, get_args

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from models.layers.kind import LayerKind, LayerSpec  # noqa: E402
from models.layers.registry import KERAS_KINDS, KINDS, kind_of, kind_of_keras  # noqa: E402
from models.layers.serving_steps import Step, StoredLayer, UnsupportedLayer  # noqa: E402
from models.serving.forward import ForwardPass  # noqa: E402
from models.training.builder import adapt, build_model  # noqa: E402
from models.training.search.space import VARY_WITHIN_GROUP  # noqa: E402
from models.training.search.trial_plan import UNTRACED  # noqa: E402
from models.training.spec import Layer, ModelSpec, count_parameters  # noqa: E402

EVERY_KIND = {
    "input_shape": [2, 3],
    "layers": [
        {"type": "normalization"},
        {"type": "flatten"},
        {"type": "dense", "units": 4, "activation": "relu",
         "kernel_regularizer": {"l2": 0.01}},
        {"type": "batch_normalization"},
        {"type": "dropout", "rate": 0.5},
        {"type": "dense", "units": 1},
    ],
    "compile": {"loss": "mse"},
    "fit": {"epochs": 1},
}  # fmt: skip


def test_the_layer_union_is_the_registry_in_its_order() -> None:
    members = get_args(get_args(Layer)[0])
    assert members == tuple(kind.spec for kind in KINDS.values())


@pytest.mark.parametrize("name", list(KINDS))
def test_every_kind_declares_its_spec_build_and_serving_step(name: str) -> None:
    kind = KINDS[name]
    assert kind.type == name
    assert KERAS_KINDS[kind.keras_class] is kind
    assert type(kind).build is not LayerKind.build
    assert type(kind).serving_step is not LayerKind.serving_step


def test_the_search_reads_what_each_kind_lets_trials_of_a_group_vary() -> None:
    per_trial = {"layers.<i>.kernel_regularizer.l1", "layers.<i>.kernel_regularizer.l2",
                 "layers.<i>.rate"}  # fmt: skip
    assert per_trial <= set(VARY_WITHIN_GROUP)
    assert "layers.<i>.rate" in UNTRACED  # a dropout rate of zero splits a group


def test_each_keras_layer_maps_back_to_the_kind_that_built_it() -> None:
    spec = ModelSpec.model_validate(EVERY_KIND)
    assert {layer.type for layer in spec.layers} == set(KINDS)
    model = build_model(spec)
    for spec_layer, keras_layer in zip(spec.layers, model.layers, strict=True):
        assert kind_of_keras(keras_layer) is kind_of(spec_layer)
    assert count_parameters(spec) == model.count_params()


def test_a_keras_layer_no_kind_builds_is_unsupported() -> None:
    import keras

    with pytest.raises(UnsupportedLayer, match="No numpy forward pass"):
        kind_of_keras(keras.layers.Activation("relu", name="odd"))


class ScaleLayer(LayerSpec):
    type: Literal["scale"]
    factor: float


class Scale(LayerKind):
    """A toy kind, declared only here: the builder and the forward pass must
    take it from the registry with no change of theirs."""

    spec = ScaleLayer
    keras_class = "Rescaling"

    def build(self, layer: ScaleLayer, dtype: str) -> Any:
        import keras

        return keras.layers.Rescaling(layer.factor, dtype=dtype)

    def serving_step(self, layer: StoredLayer) -> Step:
        factor = np.float32(layer.config["scale"])
        return lambda x: x * factor


@pytest.fixture
def scale_registered(monkeypatch: pytest.MonkeyPatch) -> LayerKind:
    kind = Scale()
    monkeypatch.setitem(KINDS, "scale", kind)
    monkeypatch.setitem(KERAS_KINDS, "Rescaling", kind)
    return kind


def test_a_kind_in_the_registry_flows_through_builder_and_forward_pass(
    scale_registered: LayerKind,
) -> None:
    plain = ModelSpec.model_validate({**EVERY_KIND, "layers": EVERY_KIND["layers"][1:]})
    # The Layer union was made at import, before this kind: put it in unvalidated.
    spec = plain.model_copy(
        update={"layers": [ScaleLayer(type="scale", factor=2.5), *plain.layers]}
    )
    model = build_model(spec)
    x = np.random.default_rng(0).normal(size=(8, 2, 3)).astype("float32")
    adapt(model, x)
    assert type(model.layers[0]).__name__ == "Rescaling"
    assert count_parameters(spec) == model.count_params()
    expected = np.asarray(model(x, training=False))
    np.testing.assert_allclose(ForwardPass.from_keras(model)(x), expected, rtol=1e-5, atol=1e-6)
