"""An OpenAI-compatible HTTP endpoint as a generator: vLLM, llama.cpp's server, TGI, hosted models.

``chat: true`` posts to ``{base_url}/chat/completions`` with the prompt as one user message;
``chat: false`` posts to ``{base_url}/completions`` (base models continuing few-shot text). The
prompts of a batch are sent as parallel requests (one thread each), which is what lets a vLLM
server batch them; each request carries ``seed`` (vLLM honours it per request). The API key, if
any, comes from the environment variable ``api_key_env`` names, never from the config file.
Only the standard library is used.

Usage (a vLLM server)::

    vllm serve Qwen/Qwen2.5-7B-Instruct --port 8000
    # synth.yaml: generator: {backend: openai, base_url: http://127.0.0.1:8000/v1, model: Qwen/Qwen2.5-7B-Instruct}
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llm2vec_lite.errors import SynthError
from llm2vec_lite.synth.backends import register_backend
from llm2vec_lite.synth.backends.base import Backend


class OpenAIBackend(Backend):
    """Generation over HTTP against an OpenAI-compatible server (see the module docstring)."""

    def __init__(self, settings: Any):
        super().__init__(settings)
        if not settings.base_url:
            raise SynthError("generator.base_url: required for backend openai, e.g. http://127.0.0.1:8000/v1")
        self.base_url = settings.base_url.rstrip("/")
        self._headers = {"Content-Type": "application/json"}

    def start(self) -> None:
        """Read the API key and check that the server answers ``GET /models``.

        Raises:
            SynthError: If ``api_key_env`` names an unset variable or the server cannot be reached.
        """
        env = self.settings.api_key_env
        if env:
            key = os.environ.get(env)
            if not key:
                raise SynthError(f"generator.api_key_env = {env!r}: the environment variable is not set; export it")
            self._headers["Authorization"] = f"Bearer {key}"
        try:
            self._request("GET", "/models", None, retries=0)
        except SynthError as e:
            raise SynthError(f"{e}. Is the server running? (generator.base_url = {self.settings.base_url})") from None

    def generate(self, prompts: list[str], *, seed: int, stop_at_newline: bool = False) -> list[str]:
        s = self.settings
        payloads = []
        for i, prompt in enumerate(prompts):
            body: dict[str, Any] = {
                "model": s.model,
                "max_tokens": s.max_new_tokens,
                "temperature": s.temperature,
                "top_p": s.top_p,
                "seed": seed + i,
            }
            if s.chat:
                body["messages"] = [{"role": "user", "content": prompt}]
            else:
                body["prompt"] = prompt
            payloads.append(body)
        path = "/chat/completions" if s.chat else "/completions"
        with ThreadPoolExecutor(max_workers=max(1, min(len(prompts), s.batch_size))) as pool:
            replies = list(pool.map(lambda b: self._request("POST", path, b, retries=s.retries), payloads))
        return [self._text(r) for r in replies]

    def _text(self, reply: Any) -> str:
        try:
            choice = reply["choices"][0]
            if self.settings.chat:
                return choice["message"]["content"] or ""
            return choice["text"] or ""
        except (KeyError, IndexError, TypeError):
            raise SynthError(
                f"{self.base_url}: unexpected reply (no choices[0].{'message.content' if self.settings.chat else 'text'}): "
                f"{str(reply)[:200]}"
            ) from None

    def _request(self, method: str, path: str, body: Any, *, retries: int) -> Any:
        url = self.base_url + path
        data = json.dumps(body).encode("utf-8") if body is not None else None
        for attempt in range(retries + 1):
            req = urllib.request.Request(url, data=data, method=method, headers=self._headers)
            try:
                with urllib.request.urlopen(req, timeout=self.settings.timeout) as resp:
                    return json.loads(resp.read().decode("utf-8"))
            except urllib.error.HTTPError as e:
                detail = e.read().decode("utf-8", "replace")[:300]
                if e.code < 500 or attempt == retries:
                    hint = " (check generator.model)" if e.code in (400, 404) else ""
                    hint = " (check generator.api_key_env)" if e.code in (401, 403) else hint
                    raise SynthError(f"{method} {url}: HTTP {e.code}: {detail}{hint}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                if attempt == retries:
                    reason = getattr(e, "reason", e)
                    raise SynthError(f"cannot reach {url}: {reason}") from None
            except json.JSONDecodeError:
                raise SynthError(f"{method} {url}: the reply is not JSON; is this an OpenAI-compatible server?") from None
            time.sleep(min(2.0**attempt, 10.0))
        raise AssertionError("unreachable")


register_backend("openai", OpenAIBackend)
