"""The table of layer kinds: by the spec's `type` and by the Keras class
name. The order is the spec's: the `Layer` union, its error messages and
the OpenAPI document list the kinds in it."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field

from models.layers.batch_normalization import BATCH_NORMALIZATION
from models.layers.dense import DENSE
from models.layers.dropout import DROPOUT
from models.layers.flatten import FLATTEN
from models.layers.kind import LayerKind, LayerSpec
from models.layers.normalization import NORMALIZATION
from models.layers.serving_steps import UnsupportedLayer

KINDS: dict[str, LayerKind] = {
    kind.type: kind for kind in (DENSE, DROPOUT, FLATTEN, BATCH_NORMALIZATION, NORMALIZATION)
}
KERAS_KINDS: dict[str, LayerKind] = {kind.keras_class: kind for kind in KINDS.values()}


def kind_of(layer: LayerSpec) -> LayerKind:
    """The kind of a validated spec layer."""
    return KINDS[layer.type]


def kind_of_keras(keras_layer: Any) -> LayerKind:
    """The kind that builds `keras_layer`'s class; UnsupportedLayer for
    one no kind builds."""
    return kind_of_class(type(keras_layer).__name__, keras_layer.name)


def kind_of_class(class_name: str, layer_name: str) -> LayerKind:
    """The kind that builds Keras' layer class `class_name` (as a `.keras`
    file's config names it); UnsupportedLayer for one no kind builds."""
    if class_name not in KERAS_KINDS:
        raise UnsupportedLayer(f"No numpy forward pass for layer {layer_name!r} ({class_name})")
    return KERAS_KINDS[class_name]


def layer_union() -> Any:
    """Every kind's spec, discriminated by `type`: the spec's `Layer`."""
    members = tuple(kind.spec for kind in KINDS.values())
    return Annotated[Union[members], Field(discriminator="type")]  # noqa: UP007
