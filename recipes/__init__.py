"""Shipped recipes (YAML). Installed as ``llm2vec_lite.recipes`` so ``importlib.resources`` finds them."""
