"""Worker side of the platform: data, the model, objectives, weightings, optimisers, adapters, metrics, and the
Ray Tune trainable that runs one unlearning trial. Importing trainables.methods.variants registers every variant."""

from trainables import moved as _moved  # noqa: E402,F401  (old module names resolve, for saved studies)
