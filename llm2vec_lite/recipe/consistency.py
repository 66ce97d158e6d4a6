"""Whole-recipe checks that read nothing: rules across fields that the schema's models cannot see.

:func:`recipe_problems` looks at a validated recipe alone (no file, no torch, no stage):
``warmup_steps`` beyond ``steps``, an unknown ``attn_implementation``. :func:`load_recipe` runs it,
so every loader (``recipe check``, ``convert``, Python code) reports these with the schema
problems. Checks that need the base model, the tokenizer, a stage or the data readers are
:func:`llm2vec_lite.checks.preflight`'s, a layer above.
"""

from __future__ import annotations

__all__ = ["ATTN_IMPLEMENTATIONS", "recipe_problems"]

# transformers 5.x attention backends (tests/test_checks.py checks these against transformers'
# own registry, so the list cannot drift). A hub kernel ("org/repo") is accepted as well.
ATTN_IMPLEMENTATIONS = (
    "eager",
    "sdpa",
    "flex_attention",
    "flash_attention_2",
    "flash_attention_3",
    "flash_attention_4",
    "paged|eager",
)


def recipe_problems(recipe) -> list[str]:
    """Problems a validated recipe has on its own (no file is read). One ``field = value: why`` a line."""
    problems = []
    attn = recipe.attn_implementation
    if attn is not None and attn not in ATTN_IMPLEMENTATIONS and "/" not in attn:
        problems.append(
            f"attn_implementation = {attn!r}: unknown attention backend; valid: "
            f"{', '.join(ATTN_IMPLEMENTATIONS)}, a hub kernel 'org/repo', or null (transformers' default)"
        )
    for i, stage in enumerate(recipe.stages):
        if stage.warmup_steps > stage.steps:
            problems.append(
                f"stages[{i}].warmup_steps = {stage.warmup_steps}: larger than steps = {stage.steps}, "
                f"so the learning rate would never reach learning_rate; use warmup_steps <= {stage.steps}"
            )
    return problems
