"""Turning a spec and a dataset into a trained Keras model.

spec         ModelSpec: the network, compile and fit settings as validated data
builder      build_model: the spec as a Keras model, from an allow-list of layers
             adapt: its normalization layer's statistics, from the training rows
labels       LabelEncoding: class names <-> the network's outputs; spec vs dataset checks
search       Search: a job's search space; trial_specs, ranking, shape_groups
fit          train: the one entry point; model.fit, or on JAX the fused trainer
fused        fit_fused: each epoch as one compiled JAX call
checkpoints  Checkpointer (when to save), capture and restore (model <-> Checkpoint)
backend      configure_backend: the Keras backend and XLA settings of a process

Imports the base, models.storage and models.datasets.
"""
