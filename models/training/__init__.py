"""Turning a spec and a dataset into a trained Keras model.

spec          ModelSpec: the network, compile and fit settings as validated data
builder       build_model: the spec as a Keras model; adapt: its normalization statistics
class_labels  LabelEncoding: class names <-> the network's outputs; spec vs dataset checks
fit           train: the one entry point; model.fit, or on JAX the fused trainer
fused/        each epoch as one compiled JAX call; trials side by side in one vmapped program
search/       a job's search space, what its trials train and how they group, k folds
checkpoints   Checkpointer (when to save), capture and restore (model <-> Checkpoint)
backend       configure_backend: the Keras backend and XLA settings of a process

Imports the base, models.layers, models.storage and models.datasets.
"""
