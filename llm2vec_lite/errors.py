"""The one small family of errors llm2vec-lite raises on bad input.

Everything derives from :class:`Llm2VecError`, so callers can catch the whole family; each
subclass also derives from the built-in type a Python user would expect (``ValueError``), so
``except ValueError`` keeps working.
"""

from __future__ import annotations


class Llm2VecError(Exception):
    """Base class of every error llm2vec-lite raises on purpose.

    ``exit_code`` is the status the CLI exits with: 1 (bad input or a failed run) unless a
    subclass says otherwise.
    """

    exit_code = 1


class UsageError(Llm2VecError, ValueError):
    """An argument (a CLI flag or a function parameter) has a value that cannot work.

    The message names the flag or parameter, the value seen and what would be valid. The CLI exits
    with status 2 for it, as argparse does for a malformed command line.
    """

    exit_code = 2


class ModelError(Llm2VecError, ValueError):
    """A model folder or file is incomplete or malformed (no ``config.json``, bad settings JSON)."""


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
