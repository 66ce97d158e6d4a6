"""vLLM's offline Python API as a generator, when vLLM is installed (GPU machines).

One ``LLM`` instance generates a whole batch; ``SamplingParams(seed=...)`` per prompt keeps runs
repeatable. Without vLLM installed, :meth:`VLLMBackend.start` says how to get it or to use the
``openai`` backend against a vLLM server instead.
"""

from __future__ import annotations

from llm2vec_lite.errors import SynthError
from llm2vec_lite.paths import resolve_model_path
from llm2vec_lite.synth.backends import register_backend
from llm2vec_lite.synth.backends.base import Backend


class VLLMBackend(Backend):
    """Generation with ``vllm.LLM`` (see the module docstring)."""

    def start(self) -> None:
        """Import vLLM and load the model.

        Raises:
            SynthError: If vLLM is not installed.
        """
        try:
            import vllm
        except ImportError:
            raise SynthError(
                "generator.backend = 'vllm': vLLM is not installed. `pip install vllm` (needs a GPU), or "
                "run `vllm serve MODEL` and use backend: openai with base_url: http://127.0.0.1:8000/v1"
            ) from None
        s = self.settings
        self._llm = vllm.LLM(model=resolve_model_path(s.model), dtype=s.dtype)
        self._vllm = vllm

    def generate(self, prompts: list[str], *, seed: int, stop_at_newline: bool = False) -> list[str]:
        s = self.settings
        params = [
            self._vllm.SamplingParams(
                temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_new_tokens, seed=seed + i
            )
            for i in range(len(prompts))
        ]
        if s.chat:
            messages = [[{"role": "user", "content": p}] for p in prompts]
            outputs = self._llm.chat(messages, params, use_tqdm=False)
        else:
            outputs = self._llm.generate(prompts, params, use_tqdm=False)
        return [o.outputs[0].text for o in outputs]


register_backend("vllm", VLLMBackend)
