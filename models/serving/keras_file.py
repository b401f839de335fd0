"""A `.keras` file read straight into the numpy forward pass, without Keras.

The file is a zip of `config.json` (the model's class and each layer's class
and config) and `model.weights.h5`, where Keras saves a layer's variables as
`layers/<path>/vars/<i>`: the path is the layer's class in snake case, `_1`,
`_2`... for its repeats (keras.src.saving.saving_lib names them by class, not
by the layer's name, which is not reproducible). Each layer's kind
(models.layers) says which variables it saves and their shapes; the file's
are checked against them before any is read.

Besides a pass, two outcomes:

    UnsupportedLayer    what the numpy pass does not implement (another model
                        class, a layer or activation no kind serves, a
                        quantized layer, weights in another layout): Keras
                        loads the file instead
    InvalidModelFile    the file is not what its own config says (not a zip,
                        cut short, a config that is not JSON, weights missing,
                        extra, or of other shapes): a load failure that says so

Defensive, as users' own files will come through it: sizes are checked
before anything is read or allocated, and HDF5 links or external storage
(data outside the file) are refused.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from models.errors import InvalidModelFile
from models.layers.kind import LayerKind, Shape
from models.layers.registry import kind_of_class
from models.layers.serving_steps import Array, Step, StoredLayer, UnsupportedLayer
from models.serving.forward import ForwardPass
from models.training.spec import MAX_PARAMS

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
MAX_CONFIG_BYTES = 16 << 20
# Every weight of the largest network a spec may have, in float32, three
# times over (an optimizer's slots are saved too), and room for HDF5's own.
MAX_WEIGHTS_FILE_BYTES = 3 * 4 * MAX_PARAMS + (16 << 20)
# What a zip member can raise while it is read: a bad header, a wrong CRC,
# a cut-off deflate stream, an encrypted or unknown compression.
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    RuntimeError,
    NotImplementedError,
    ValueError,
)


def read_forward_pass(path: Path, input_shape: list[int]) -> ForwardPass:
    """The numpy pass of the model in the `.keras` file at `path`, whose
    samples are of shape `input_shape` (the version's manifest says)."""
    try:
        archive = zipfile.ZipFile(path)
    except ZIP_ERRORS as exc:
        raise InvalidModelFile(f"The model file is not a .keras archive (a zip): {exc}") from None
    with archive:
        config = _parse_config(_member(archive, CONFIG_FILE, MAX_CONFIG_BYTES))
        layers = _layers(config, input_shape)
        if WEIGHTS_FILE not in archive.namelist():
            raise UnsupportedLayer(
                f"No {WEIGHTS_FILE} in the .keras file (its weights are kept in another layout)"
            )
        weights = _member(archive, WEIGHTS_FILE, MAX_WEIGHTS_FILE_BYTES)
    try:
        h5 = h5py.File(io.BytesIO(weights), "r")
    except OSError as exc:
        raise InvalidModelFile(f"The .keras file's {WEIGHTS_FILE} is not HDF5: {exc}") from None
    with h5:
        try:
            return ForwardPass(_steps(layers, h5, tuple(input_shape)))
        except (OSError, RuntimeError) as exc:  # HDF5's own structures damaged
            raise InvalidModelFile(
                f"The .keras file's {WEIGHTS_FILE} does not read: {exc}"
            ) from None


def _member(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise InvalidModelFile(f"The .keras file has no {name}") from None
    if info.file_size > limit:
        raise InvalidModelFile(
            f"The .keras file's {name} unpacks to {info.file_size:,} bytes; "
            f"at most {limit:,} are read"
        )
    try:
        return archive.read(info)  # at most file_size bytes, its CRC checked
    except ZIP_ERRORS as exc:
        raise InvalidModelFile(f"The .keras file's {name} does not unpack: {exc}") from None


def _parse_config(text: bytes) -> dict[str, Any]:
    try:
        config = json.loads(text)
    except ValueError as exc:  # UnicodeDecodeError too
        raise InvalidModelFile(f"The .keras file's {CONFIG_FILE} is not JSON: {exc}") from None
    if not isinstance(config, dict):
        raise InvalidModelFile(f"The .keras file's {CONFIG_FILE} is not a JSON object")
    return config


def _layers(config: dict[str, Any], input_shape: list[int]) -> list[dict[str, Any]]:
    """The Sequential model's layers after its input, its input shape checked."""
    if config.get("module") != "keras" or config.get("class_name") != "Sequential":
        raise UnsupportedLayer(
            f"A {str(config.get('class_name'))[:100]!r} model, not a Sequential one"
        )
    layers = (config.get("config") or {}).get("layers")
    if not isinstance(layers, list) or not layers or not isinstance(layers[0], dict):
        raise InvalidModelFile(f"The .keras file's {CONFIG_FILE} lists no layers")
    if layers[0].get("class_name") != "InputLayer":
        raise UnsupportedLayer("A Sequential model without an input layer")
    batch_shape = (layers[0].get("config") or {}).get("batch_shape")
    if not isinstance(batch_shape, list) or batch_shape[1:] != list(input_shape):
        shown = str(batch_shape)[:100]
        raise InvalidModelFile(
            f"The .keras file's model takes samples of shape {shown}, not the version's "
            f"{input_shape}"
        )
    return layers[1:]


def _steps(layers: list[dict[str, Any]], h5: h5py.File, shape: Shape) -> list[Step]:
    steps: list[Step] = []
    used: dict[str, int] = {}
    budget = MAX_PARAMS  # weights read in all
    for place, entry in enumerate(layers):
        kind, config = _kind(entry, place)
        # Named as Keras' saving_lib names it: by class, numbered in order.
        path = _snake_case(str(entry["class_name"]))
        used[path] = used.get(path, -1) + 1
        path = f"layers/{path}_{used[path]}/vars" if used[path] else f"layers/{path}/vars"
        try:
            expected = kind.stored_weights(config, shape)
            budget -= sum(_elements(weight_shape, place) for weight_shape in expected.values())
            if budget < 0:
                raise InvalidModelFile(
                    f"The .keras file's model has more than {MAX_PARAMS:,} "
                    f"weights (at layer {config['name']!r})"
                )
            weights = _read_weights(h5, path, expected, config["name"])
            step = kind.serving_step(StoredLayer(config["name"], config, weights))
            shape = step(np.zeros((1, *shape), dtype=np.float32)).shape[1:]
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            # A config its kind does not read as Keras' own: Keras decides.
            problem = f"{type(exc).__name__}: {exc}"
            raise UnsupportedLayer(
                f"Layer {config['name']!r} has a config the numpy pass does not read: {problem}"
            ) from None
        steps.append(step)
    return steps


def _kind(entry: Any, place: int) -> tuple[LayerKind, dict[str, Any]]:
    """The kind that serves the layer listed at `place`, and its config."""
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        raise InvalidModelFile(f"Layer {place} of the .keras file's {CONFIG_FILE} has no config")
    config, class_name = entry["config"], str(entry.get("class_name"))[:100]
    name = config["name"] = str(config.get("name", f"layer {place}"))[:100]
    if entry.get("module") != "keras.layers" or entry.get("registered_name"):
        raise UnsupportedLayer(f"Layer {name!r} is a {class_name!r} from outside Keras")
    dtype = config.get("dtype")
    if isinstance(dtype, dict) and dtype.get("class_name") != "DTypePolicy":
        raise UnsupportedLayer(f"Layer {name!r} computes under a {dtype.get('class_name')!r}")
    return kind_of_class(class_name, name), config


def _elements(shape: Shape, place: int) -> int:
    if not all(isinstance(size, int) and size >= 0 for size in shape):
        raise UnsupportedLayer(f"Layer {place}'s config gives a weight of shape {shape}")
    return int(np.prod(shape, dtype=np.int64))


def _read_weights(
    h5: h5py.File, path: str, expected: dict[str, Shape], layer: str
) -> dict[str, Array]:
    """The layer's variables at `path`, by name, once their number, shapes and
    types are what its config says."""
    group = _child(h5, path, layer) if expected else None
    stored = set(group.keys()) if group is not None else set()
    if stored != {str(index) for index in range(len(expected))}:
        raise InvalidModelFile(
            f"Layer {layer!r} has {len(stored)} variables at {path}; its "
            f"config says {len(expected)}: {', '.join(expected)}"
        )
    weights = {}
    for index, (name, shape) in enumerate(expected.items()):
        dataset = _child(h5, f"{path}/{index}", layer)
        where = f"{path}/{index} (the {name} of layer {layer!r})"
        if not isinstance(dataset, h5py.Dataset) or dataset.external or dataset.is_virtual:
            raise InvalidModelFile(f"{where} is not an array stored in the file")
        if dataset.shape != shape or dataset.dtype.kind not in "fiu":
            raise InvalidModelFile(
                f"{where} holds {dataset.dtype} of shape {dataset.shape}; its config says "
                f"numbers of shape {shape}"
            )
        try:
            weights[name] = np.asarray(dataset[()], dtype=np.float32)
        except (OSError, ValueError, TypeError) as exc:
            raise InvalidModelFile(f"{where} does not read: {exc}") from None
    return weights


def _child(h5: h5py.File, path: str, layer: str) -> Any:
    """The object at `path`, reached through the file's own hard links only
    (a soft or external link could lead anywhere, another file included)."""
    node: Any = h5
    for part in path.split("/"):
        link = node.get(part, getlink=True) if isinstance(node, h5py.Group) else None
        if not isinstance(link, h5py.HardLink):
            raise InvalidModelFile(
                f"Layer {layer!r}'s weights are not at {path} in the .keras file's {WEIGHTS_FILE}"
            )
        node = node[part]
    return node


def _snake_case(name: str) -> str:
    """keras.src.utils.naming.to_snake_case."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
