"""Inference-time gates on a decoder layer: the sparse autoencoder and the static and dynamic (DSG) gates."""
