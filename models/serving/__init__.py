"""Answering predictions with published model versions.

catalog          ModelCatalog: which versions exist (in memory, told of changes over Redis)
predictor        Predictor: loads versions once per process, hot-swaps new ones
model_loading    load_version: a version read without Keras when its record confirms it
keras_file       a `.keras` file read into the numpy pass, without Keras
serving_record   what a worker records at publish for that check: probe outputs, penalty
footprint        what a loaded version holds in memory (LoadedModel.nbytes)
loaded_model     LoadedModel: a loaded version and how it answers; Prediction: its answer
warm_up          each version warmed before it takes traffic; WarmUp: what /readyz reports
forward          ForwardPass: the numpy forward pass, one step per layer
samples          JSON and NPY predict bodies into arrays; csv_samples: CSV bodies
binary_tensors   the Open Inference Protocol's binary tensor data extension
evaluation       :evaluate on a stored dataset; keras_metrics: Keras' losses and metrics in numpy
version_labels   VersionLabels: `stable`, `canary` -> a version, in Redis
exporter         SavedModel and ONNX exports, built by export_converters in a TensorFlow child
prediction_log_writer  sampled predictions, written to the store off the request path

Imports the base, models.layers, models.storage, models.datasets and models.training.
"""
