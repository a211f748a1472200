"""The model: loading, decoder layers, architecture shapes with random weights, batching."""
