"""Build a version's TF SavedModel and ONNX exports, in a process of its own.

    KERAS_BACKEND=tensorflow python -m models.serving.export_converters \
        MODEL.keras OUT_DIR INPUT_SHAPE_JSON NAME VERSION

Run by models.serving.exporter, never imported by the API process: it imports
TensorFlow. Writes `OUT_DIR/saved_model/` (signature `serving_default`: input
`x`, float32 `[batch, *input_shape]`; output `output_0`, as the API's
metadata describes them), `OUT_DIR/model.onnx` (the same names, from Keras'
own exporter, tf2onnx, which takes any layer Keras has) and
`OUT_DIR/result.json`: each format's error, null when it was built.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np

INPUT_NAME = "x"
OUTPUT_NAME = "output_0"


def main(argv: list[str]) -> int:
    model_path, out_dir, input_shape_json, name, version = argv
    os.environ["KERAS_BACKEND"] = "tensorflow"  # before Keras is imported
    import keras
    import tensorflow as tf

    out = Path(out_dir)
    model = keras.saving.load_model(model_path, safe_mode=True)
    _normalization_as_constants(model)
    shape = [None, *json.loads(input_shape_json)]
    spec = tf.TensorSpec(shape, tf.float32, name=INPUT_NAME)
    results: dict[str, str | None] = {}
    for format_name, build in (("saved_model", saved_model), ("onnx", onnx_file)):
        try:
            build(model, spec, out, {"fitserve_model": name, "fitserve_version": version})
            results[format_name] = None
        except Exception as exc:  # the other format may still build
            traceback.print_exc()
            results[format_name] = f"{type(exc).__name__}: {exc}"[:1000]
    (out / "result.json").write_text(json.dumps(results))
    return 0


def _normalization_as_constants(model: Any) -> None:
    """Keras' Normalization computes with tensors it caches from its mean and
    variance; traced, those eager tensors become inputs of the graph, which
    tf2onnx leaves as inputs of the ONNX model (to be fed by the caller). As
    numpy arrays they are traced as constants instead."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.Normalization):
            layer.mean = keras.ops.convert_to_numpy(layer.mean)
            layer.variance = keras.ops.convert_to_numpy(layer.variance)


def saved_model(model: Any, spec: Any, out: Path, properties: dict[str, str]) -> None:
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    # A signature with TF Serving's names: the input is `x` (the function's
    # argument and the spec's name), the output a dict key.
    archive.add_endpoint(
        "serving_default",
        tf.function(lambda x: {OUTPUT_NAME: model(x, training=False)}),
        input_signature=[spec],
    )
    archive.write_out(str(out / "saved_model"), verbose=False)


def onnx_file(model: Any, spec: Any, out: Path, properties: dict[str, str]) -> None:
    import onnx

    path = out / "model.onnx"
    model.export(str(path), format="onnx", input_signature=[spec], verbose=False)
    graph_model = onnx.load(str(path))
    graph = graph_model.graph
    # tf2onnx names the output after the TensorFlow tensor (`Identity:0`):
    # renamed to the signature's output name.
    (output,) = graph.output
    old = output.name
    for node in graph.node:
        node.output[:] = [OUTPUT_NAME if item == old else item for item in node.output]
        node.input[:] = [OUTPUT_NAME if item == old else item for item in node.input]
    output.name = OUTPUT_NAME
    erfc_as_erf(graph)
    for key, value in properties.items():
        graph_model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(graph_model, full_check=True)
    onnx.save(graph_model, str(path))


def erfc_as_erf(graph: Any) -> None:
    """Rewrite each `Erfc` node as `1 - Erf(x)`.

    Keras' exact gelu is `0.5 * x * erfc(-x / sqrt(2))` on TensorFlow, and
    tf2onnx (1.17) passes TensorFlow's Erfc through as an op ONNX does not
    have, so the graph fails the checker. Every other activation of the
    builder converts as it is (checked in tests/service/test_export.py).
    In float32, 1 - erf(x) differs from erfc(x) by at most an ulp of 1:
    gelu's output stays within 1e-7 of Keras'."""
    from onnx import helper, numpy_helper

    nodes = list(graph.node)
    if not any(node.op_type == "Erfc" and node.domain in ("", "ai.onnx") for node in nodes):
        return
    one = "fitserve_erfc_one"
    graph.initializer.append(numpy_helper.from_array(np.array(1.0, dtype=np.float32), one))
    rewritten = []
    for index, node in enumerate(nodes):
        if node.op_type == "Erfc" and node.domain in ("", "ai.onnx"):
            erf = f"{node.output[0]}_fitserve_erf{index}"
            rewritten.append(helper.make_node("Erf", [node.input[0]], [erf]))
            rewritten.append(helper.make_node("Sub", [one, erf], [node.output[0]]))
        else:
            rewritten.append(node)
    del graph.node[:]
    graph.node.extend(rewritten)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
