"""Every byte that goes to disk: published model versions, dataset files,
batch prediction results and checkpoint files.

model_store    ModelStore: TF Serving's `<name>/<version>/` tree, published atomically
dataset_files  DatasetFiles: a stored dataset's arrays and record
results        ResultStore: a batch prediction job's outputs
checkpoints    Checkpoint and CheckpointStore: a training job's last saved state

Imports only the base (models.errors, models.settings).
"""
