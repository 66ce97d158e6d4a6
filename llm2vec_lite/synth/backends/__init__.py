"""Generator backends of ``llm2vec-lite synth``, registered by the name a config gives them.

Each backend module ends with ``register_backend("<name>", <Class>)``; the three shipped ones
import nothing heavy at module level, so listing backends (config validation) stays fast.

- ``transformers``: a local model (folder, hub id, ``.gguf``, ``package:`` path), batched sampling.
- ``openai``: any OpenAI-compatible HTTP server (vLLM, llama.cpp, TGI, hosted), the path to scale.
- ``vllm``: vLLM's offline Python API, when vLLM is installed.
"""

from __future__ import annotations

from llm2vec_lite.errors import SynthError
from llm2vec_lite.synth.backends.base import Backend

__all__ = ["Backend", "get_backend", "make_backend", "register_backend", "registered_backends"]

_BACKENDS: dict[str, type[Backend]] = {}


def register_backend(name: str, cls: type[Backend]) -> type[Backend]:
    """Register ``cls`` as backend ``name``.

    Raises:
        ValueError: If ``name`` is taken or ``cls`` is not a :class:`Backend`.
    """
    if name in _BACKENDS:
        raise ValueError(f"backend {name!r} is already registered ({_BACKENDS[name].__module__}); choose another name")
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise ValueError(f"backend {name!r}: {cls!r} is not a subclass of llm2vec_lite.synth.backends.Backend")
    _BACKENDS[name] = cls
    return cls


def registered_backends() -> list[str]:
    """Backend names a synth config may use."""
    _load_builtin()
    return sorted(_BACKENDS)


def get_backend(name: str) -> type[Backend]:
    """The backend class registered as ``name``.

    Raises:
        SynthError: If no backend has that name.
    """
    _load_builtin()
    try:
        return _BACKENDS[name]
    except KeyError:
        raise SynthError(f"unknown backend {name!r}; known: {', '.join(sorted(_BACKENDS))}") from None


def make_backend(settings) -> Backend:
    """An instance of the backend ``settings.backend`` names (nothing is loaded or contacted yet)."""
    return get_backend(settings.backend)(settings)


def _load_builtin() -> None:
    # Importing the modules runs their register_backend(...) lines.
    from llm2vec_lite.synth.backends import openai, transformers, vllm  # noqa: F401
