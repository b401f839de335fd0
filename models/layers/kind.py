"""What a layer kind declares, in one place (Keras keeps a layer's config,
build and call in one file too): its spec, its Keras layer, its numpy serving
step, its parameter count, and how the vmapped group program treats it.

A kind is a `LayerKind` subclass; the defaults are those of a layer with no
weights and nothing a search may vary. The registry (models.layers.registry)
maps a spec's `type` and a Keras class name to the kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import reduce
from typing import TYPE_CHECKING, Any, ClassVar, get_args

from models.layers.serving_steps import Step, StoredLayer
from models.validation import StrictModel

if TYPE_CHECKING:
    import keras

Shape = tuple[int, ...]


class LayerSpec(StrictModel):
    """What every layer of a spec has: the `type` that names its kind."""

    type: str


class LayerKind:
    """One layer kind: subclasses set `spec` and `keras_class`, and override
    `build`, `serving_step` and whichever defaults do not fit."""

    spec: ClassVar[type[LayerSpec]]
    keras_class: ClassVar[str]  # the Keras class `build` makes, as its __name__
    # Keras adapts the layer's state on the training rows before fitting.
    adapts: ClassVar[bool] = False
    # Fields, dotted below the layer, that trials of one vmapped group may set
    # differently: the program takes them as per-trial inputs (`tracing_with`).
    per_trial_fields: ClassVar[tuple[str, ...]] = ()
    # Of those, the ones whose zero against non-zero still splits programs.
    split_on_zero: ClassVar[tuple[str, ...]] = ()

    @property
    def type(self) -> str:
        """The spec's `type` literal that names this kind."""
        return str(get_args(self.spec.model_fields["type"].annotation)[0])

    def build(self, layer: Any, dtype: str) -> keras.layers.Layer:
        """The Keras layer for `layer`, computing in `dtype`."""
        raise NotImplementedError

    def serving_step(self, layer: StoredLayer) -> Step:
        """The Keras layer's call(x, training=False) in numpy, from its config
        and weights; UnsupportedLayer for a configuration the step does not
        implement."""
        raise NotImplementedError

    def stored_weights(self, config: dict[str, Any], inputs: Shape) -> dict[str, Shape]:
        """The variables Keras saves for a layer of this config on samples of
        shape `inputs`: their names, in the order of the layer's `vars/<i>` in
        a `.keras` file, and their shapes. UnsupportedLayer for a
        configuration the step does not implement (before its weights are read)."""
        return {}

    def parameters(self, layer: Any, inputs: Shape) -> int:
        """How many weights the layer holds on inputs of shape `inputs`."""
        return 0

    def output_shape(self, layer: Any, inputs: Shape) -> Shape:
        """The shape of one sample after the layer (without the batch axis)."""
        return inputs

    def is_traced(self, layer: Any) -> bool:
        """Whether a group program takes `per_trial_fields` as inputs for this
        layer; otherwise they are constants (or the layer has none)."""
        return False

    def trial_values(self, layer: Any) -> list[float]:
        """`layer`'s values of `per_trial_fields`, in their order."""
        return [float(_dotted(layer, field)) for field in self.per_trial_fields]

    def split_key(self, layer: Any) -> list[bool] | None:
        """What of `layer` a group program bakes in although trials may vary it."""
        return [_dotted(layer, field) > 0 for field in self.split_on_zero] or None

    def tracing_with(self, keras_layer: Any, values: Any) -> AbstractContextManager[None]:
        """While a group program is traced: `keras_layer` computes with the
        traced `values` (one per `per_trial_fields`) instead of its Python floats."""
        return nullcontext()

    def tracing_per_member(self, keras_layer: Any) -> AbstractContextManager[None]:
        """While a program of k-fold members is traced: `keras_layer` computes
        with each member's own adapted state (for kinds that adapt)."""
        return nullcontext()

    def write_trial_values(self, keras_layer: Any, layer: Any) -> None:
        """Set `per_trial_fields` of `layer` on the group's shared Keras layer,
        so the model saved for a trial has the trial's config."""


@contextmanager
def replaced(target: Any, name: str, value: Any) -> Iterator[None]:
    """`target.name` is `value` inside the block, and what it was after."""
    kept = getattr(target, name)
    setattr(target, name, value)
    try:
        yield
    finally:
        setattr(target, name, kept)


@contextmanager
def calling(keras_layer: Any, call: Callable[..., Any]) -> Iterator[None]:
    """`keras_layer` runs `call` inside the block: an instance attribute,
    deleted after, so the model saved later is plain Keras."""
    keras_layer.call = call
    try:
        yield
    finally:
        del keras_layer.call


def _dotted(layer: Any, field: str) -> Any:
    return reduce(getattr, field.split("."), layer)
