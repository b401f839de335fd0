"""What a layer kind's numpy serving step is made of: the step's type, the
stored layer it is built from (a layer's config and its float32 weights by
name, read off a Keras layer or straight from a `.keras` file, so that
serving needs no Keras), and the refusal a kind raises for a configuration
its step does not implement (the version is then served with Keras)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.errors import FitserveError

Array = np.ndarray
Step = Callable[[Array], Array]

# keras.config.epsilon()'s default. A model saved by a Keras configured with
# another one disagrees on the probe batch, and is served with Keras.
KERAS_EPSILON = np.float32(1e-7)


class UnsupportedLayer(FitserveError):
    """The model holds something the numpy pass does not implement: serve it with Keras."""

    code = "unsupported_layer"


@dataclass(frozen=True)
class StoredLayer:
    """One Keras layer as its step needs it: its name, its `get_config()`,
    and its variables as float32 arrays, by their Keras names."""

    name: str
    config: dict[str, Any]
    weights: dict[str, Array]
