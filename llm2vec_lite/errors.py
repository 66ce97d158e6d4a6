"""The one small family of errors llm2vec-lite raises on bad input.

Everything derives from :class:`Llm2VecError`, so callers can catch the whole family; each
subclass also derives from the built-in type a Python user would expect (``ValueError``), so
``except ValueError`` keeps working.
"""

from __future__ import annotations


class Llm2VecError(Exception):
    """Base class of every error llm2vec-lite raises on purpose."""


class RecipeError(Llm2VecError, ValueError):
    """A recipe file is malformed, names a missing file, or asks for something impossible.

    The message names the file, the field path and what was expected, one problem a line.
    """


class PatchError(Llm2VecError, ValueError):
    """A bidirectional patch could not be applied or verified."""


class UnsupportedArchitectureError(PatchError):
    """No patch is registered for a model's ``config.model_type``."""

    def __init__(self, model_type: str, supported: list[str]):
        self.model_type = model_type
        self.supported = sorted(supported)
        super().__init__(
            f"No bidirectional patch for model_type {model_type!r}. Supported: "
            f"{', '.join(self.supported)}. Add patches/{model_type}.py (see docs/patches.md)."
        )


class DataError(Llm2VecError, ValueError):
    """A training or evaluation data source is missing, empty, or has the wrong columns."""


class TrainingError(Llm2VecError, RuntimeError):
    """Training cannot continue (for example the loss became NaN or inf)."""


class SynthError(Llm2VecError, ValueError):
    """Synthetic data generation cannot start or go on: a bad synth config, an unreachable
    endpoint, a generator that returns nothing parseable, or an output written by another config."""
