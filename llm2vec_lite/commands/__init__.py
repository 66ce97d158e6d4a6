"""One module per ``llm2vec-lite`` verb; each exposes ``register(subparsers)``."""
