"""Training stages, registered by the ``kind`` a recipe names them with.

Each stage module ends with ``register_stage("<kind>", <Class>)``; the pipeline looks stages up
with :func:`get_stage`. A stage only supplies data, setup and a loss; the loop is
:func:`llm2vec_lite.trainer.train` (see :class:`llm2vec_lite.stages.base.Stage` for the hooks).

Stages shipped: ``mntp`` (masked next-token prediction), ``simcse`` (unsupervised SimCSE),
``supervised`` (InfoNCE with hard negatives, optional GradCache).
"""

from __future__ import annotations

from llm2vec_lite.errors import RecipeError

__all__ = ["get_stage", "register_stage", "registered_stages"]

_STAGES: dict[str, type] = {}


def register_stage(kind: str, cls: type) -> type:
    """Register ``cls`` as the stage for recipe ``kind``.

    Raises:
        ValueError: If ``kind`` is already registered, or ``cls`` is not a
            :class:`~llm2vec_lite.stages.base.Stage` or leaves one of its abstract hooks undefined.
    """
    from llm2vec_lite.stages.base import Stage

    if kind in _STAGES:
        raise ValueError(
            f"stage {kind!r} is already registered ({_STAGES[kind].__module__}); each kind has one stage"
        )
    if not (isinstance(cls, type) and issubclass(cls, Stage)):
        raise ValueError(f"stage class {cls!r} must subclass llm2vec_lite.stages.base.Stage")
    if cls.__abstractmethods__:
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise ValueError(f"stage class {cls.__name__} lacks {missing} (see stages/base.py)")
    _STAGES[kind] = cls
    return cls


def registered_stages() -> list[str]:
    """The stage kinds a recipe may use."""
    _load_builtin()
    return sorted(_STAGES)


def get_stage(kind: str) -> type:
    """The stage class registered for ``kind``.

    Raises:
        RecipeError: If no stage has that kind.
    """
    _load_builtin()
    try:
        return _STAGES[kind]
    except KeyError:
        raise RecipeError(f"Unknown stage kind {kind!r}. Known: {', '.join(sorted(_STAGES))}.") from None


def _load_builtin() -> None:
    # Importing the modules runs their register_stage(...) lines.
    from llm2vec_lite.stages import mntp, simcse, supervised  # noqa: F401
