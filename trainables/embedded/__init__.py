"""The embedded default: a tiny multilingual model and its corpus, built here on CPU and cached.

`corpus` generates the templated multilingual text; `builder` trains a tokenizer and pretrains the model on it (and
the retain-only oracle), cached under trainables.cache.cache_root().
"""

from trainables.embedded.builder import (
    EMBEDDED_ROLES,
    BuiltModel,
    EmbeddedModel,
    EmbeddedSpec,
    OracleModel,
    ensure_embedded,
    ensure_oracle,
)

__all__ = ["EMBEDDED_ROLES", "BuiltModel", "EmbeddedModel", "EmbeddedSpec", "OracleModel", "ensure_embedded",
           "ensure_oracle"]
