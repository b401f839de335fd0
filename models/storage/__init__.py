"""Every stored byte, in a local folder or an S3 bucket: published model
versions, dataset files, batch results, checkpoint files, the prediction log.

blobs               Blobs: the one small object-store interface, a folder's and a bucket's
model_store         ModelStore: TF Serving's `<name>/<version>/` tree, published atomically
dataset_files       DatasetFiles: a stored dataset's arrays and record
results             ResultStore: a batch prediction job's outputs
checkpoint_files    Checkpoint and CheckpointStore: a training job's last saved state
prediction_records  PredictionRecords: the prediction log's hourly JSON-lines objects
debris              what interrupted writes left behind, cleared at start

Imports only the base.
"""
