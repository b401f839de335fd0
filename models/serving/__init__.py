"""Answering predictions with published model versions.

predictor  Predictor: loads versions once per process, hot-swaps new ones
catalog    ModelCatalog: which versions exist (cached and kept current for a bucket)
forward    ForwardPass: a numpy forward pass read off a Keras model's layers
samples    parsing predict request bodies (JSON, CSV, NPY) into arrays

Imports the base, models.storage and models.training (spec, labels).
"""
