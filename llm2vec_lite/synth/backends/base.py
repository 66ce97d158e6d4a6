"""The backend protocol: turn a batch of prompts into a batch of answers.

A backend is built from :class:`~llm2vec_lite.synth.config.GeneratorSettings`, does nothing
expensive in ``__init__``, loads or contacts its model in :meth:`Backend.start` (called once,
before the long work, so a bad model path or a dead endpoint fails fast), and then answers
:meth:`Backend.generate` calls. ``describe()`` goes into each example's provenance.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class Backend(ABC):
    """Base class of generator backends (see the module docstring)."""

    def __init__(self, settings: Any):
        self.settings = settings

    def start(self) -> None:  # noqa: B027 (an optional hook; most backends override it)
        """Load the model or check the endpoint. Raises SynthError saying what to fix."""

    @abstractmethod
    def generate(self, prompts: list[str], *, seed: int, stop_at_newline: bool = False) -> list[str]:
        """One answer per prompt (the generated text only, without the prompt).

        Args:
            prompts: user messages (chat) or text to continue (``chat: false``).
            seed: seed of this call; the run derives it from the config seed and the batch.
            stop_at_newline: the answer is one line; a backend may stop generating once a line
                that is not blank nor a preamble ("Sure, here it is:") is finished (the parser
                cuts there anyway).
        """

    def describe(self) -> str:
        """``backend:model``, recorded in every example's provenance."""
        return f"{self.settings.backend}:{self.settings.model}"

    def close(self) -> None:  # noqa: B027 (an optional hook)
        """Free what :meth:`start` took."""
