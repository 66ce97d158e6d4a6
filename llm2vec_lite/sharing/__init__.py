"""Everything that makes a finished conversion shareable: the card, the recipe as run, provenance.

:func:`write_shareable` is what ``convert`` calls on ``output_dir/final``: it writes
``recipe.yaml`` (:mod:`~llm2vec_lite.sharing.written`), ``provenance.json``
(:mod:`~llm2vec_lite.sharing.provenance`) and ``README.md`` (:mod:`~llm2vec_lite.sharing.card`).
None of them names a directory of the machine that made the folder. Publishing the folder is
:mod:`~llm2vec_lite.sharing.push`.
"""

from __future__ import annotations

from pathlib import Path

from llm2vec_lite.checkpoint import write_json

__all__ = ["write_shareable"]


def write_shareable(recipe, final: Path, *, card_template: str | Path | None = None) -> None:
    """Write ``recipe.yaml``, ``provenance.json`` and ``README.md`` into ``final``."""
    from llm2vec_lite.sharing.card import write_card
    from llm2vec_lite.sharing.provenance import PROVENANCE_FILE, build_provenance
    from llm2vec_lite.sharing.written import written_recipe_text

    final = Path(final)
    text, outside = written_recipe_text(recipe)
    (final / "recipe.yaml").write_text(text, encoding="utf-8")
    write_json(final / PROVENANCE_FILE, build_provenance(recipe, final, outside))
    write_card(recipe, final, template=card_template)
