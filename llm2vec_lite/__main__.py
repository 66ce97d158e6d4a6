"""``python -m llm2vec_lite`` is the same as the ``llm2vec-lite`` command."""

from llm2vec_lite.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
