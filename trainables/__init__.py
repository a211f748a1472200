"""Worker side of the platform: data, the model, objectives, weightings, optimisers, adapters, metrics, and the
Ray Tune trainable that runs one unlearning trial. Importing trainables.variants registers every variant."""
