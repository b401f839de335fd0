"""What a layer kind's numpy serving step is made of: the step's type, the
float32 weights it reads off a Keras layer, and the refusal it raises for a
configuration it does not implement (the predictor then serves with Keras)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from models.errors import FitserveError

Array = np.ndarray
Step = Callable[[Array], Array]


class UnsupportedLayer(FitserveError):
    """The model holds something the numpy pass does not implement: serve it with Keras."""

    code = "unsupported_layer"


def float32_weights(variable: Any) -> Array:
    """A Keras variable's values, as a float32 numpy array."""
    import keras

    return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float32)
