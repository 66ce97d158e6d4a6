"""Backends: OpenAI-compatible HTTP against a local server, transformers on a tiny random model, vLLM absent."""

from __future__ import annotations

import json
import socket

import pytest
from conftest import field_answer

from llm2vec_lite.cli import main
from llm2vec_lite.errors import SynthError
from llm2vec_lite.synth import load_synth_config, run_synth
from llm2vec_lite.synth.backends import make_backend
from llm2vec_lite.synth.config import GeneratorSettings


def _json_reply(prompt: str, seed: int) -> str:
    if "List" in prompt:
        return "Here are tasks:\n1. Given a dish, retrieve its recipes.\n2. Given a city, retrieve hotel reviews."
    return json.dumps({"query": f"query {seed} about food", "positive": f"a full answer {seed}", "negative": f"a near miss {seed}"})


def test_openai_backend_runs_both_steps_against_a_local_server(write_config, openai_server):
    server = openai_server(_json_reply)
    cfg = load_synth_config(
        write_config(
            generator={"backend": "openai", "model": "canned-model", "base_url": server.base_url, "batch_size": 3},
            format="json",
        )
    )
    summary = run_synth(cfg, progress=False)
    assert summary.kept == summary.asked == 10
    posts = [r for r in server.requests if r["path"].endswith("/chat/completions")]
    assert len(posts) == 3 + 10  # one brainstorm batch of 3, then one request per example
    body = posts[-1]["body"]
    assert body["messages"][0]["role"] == "user" and body["temperature"] == cfg.generator.temperature
    assert len({p["body"]["seed"] for p in posts}) == len(posts)  # every request has its own seed
    row = json.loads(cfg.output_path.read_text().splitlines()[0])
    assert row["provenance"]["generator"] == "openai:canned-model"


def test_openai_backend_plain_completions_for_base_models(openai_server):
    server = openai_server(lambda prompt, seed: " a continuation\nnext example")
    settings = GeneratorSettings(backend="openai", model="canned-model", base_url=server.base_url, chat=False)
    backend = make_backend(settings)
    backend.start()
    assert backend.generate(["Query:", "Passage:"], seed=1, stop_at_newline=True) == [" a continuation\nnext example"] * 2
    assert [r["path"] for r in server.requests] == ["/v1/completions"] * 2
    assert sorted(r["body"]["prompt"] for r in server.requests) == ["Passage:", "Query:"]  # sent in parallel


def test_openai_backend_sends_the_key_from_the_environment(openai_server, monkeypatch):
    server = openai_server(field_answer, require_key="s3cret")
    settings = GeneratorSettings(
        backend="openai", model="canned-model", base_url=server.base_url, api_key_env="SYNTH_TEST_KEY", retries=0
    )
    backend = make_backend(settings)
    monkeypatch.delenv("SYNTH_TEST_KEY", raising=False)
    with pytest.raises(SynthError, match="api_key_env = 'SYNTH_TEST_KEY': the environment variable is not set"):
        backend.start()
    monkeypatch.setenv("SYNTH_TEST_KEY", "wrong")
    backend = make_backend(settings)
    backend.start()
    with pytest.raises(SynthError, match="HTTP 401.*check generator.api_key_env"):
        backend.generate(["Query:"], seed=0)
    monkeypatch.setenv("SYNTH_TEST_KEY", "s3cret")
    backend = make_backend(settings)
    backend.start()
    assert backend.generate(["Query:"], seed=0)[0].startswith("Query: how do people")


def test_openai_backend_names_a_wrong_model(openai_server):
    server = openai_server(field_answer)
    backend = make_backend(GeneratorSettings(backend="openai", model="other", base_url=server.base_url, retries=0))
    backend.start()
    with pytest.raises(SynthError, match="HTTP 404.*check generator.model"):
        backend.generate(["x"], seed=0)


def test_unreachable_endpoint_fails_before_any_work(write_config, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = load_synth_config(
        write_config(generator={"backend": "openai", "model": "m", "base_url": f"http://127.0.0.1:{port}/v1", "retries": 0})
    )
    with pytest.raises(SynthError, match=r"cannot reach http://127.0.0.1:\d+/v1/models.*Is the server running"):
        run_synth(cfg, progress=False)
    assert not cfg.output_path.exists() and not cfg.tasks_path.exists()


def test_vllm_backend_says_how_to_get_vllm_when_absent():
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401

        pytest.skip("vLLM is installed")
    except ImportError:
        pass
    backend = make_backend(GeneratorSettings(backend="vllm", model="m"))
    with pytest.raises(SynthError, match="vLLM is not installed.*backend: openai"):
        backend.start()


def _tiny_backend(tiny_model, tiny_tokenizer, **settings):
    from llm2vec_lite.synth.backends.transformers import TransformersBackend

    model = tiny_model("llama", head="causal_lm", seed=0)
    gen = GeneratorSettings(backend="transformers", model="tiny", **{"max_new_tokens": 8, **settings})
    return TransformersBackend(gen, model=model, tokenizer=tiny_tokenizer())


def test_transformers_backend_is_deterministic_for_a_seed(tiny_model, tiny_tokenizer):
    backend = _tiny_backend(tiny_model, tiny_tokenizer, temperature=1.0)
    backend.start()
    prompts = ["the cat is on the", "a dog", "it was in the"]
    first = backend.generate(prompts, seed=3)
    assert backend.generate(prompts, seed=3) == first
    assert backend.generate(prompts, seed=4) != first
    assert all(isinstance(t, str) and t for t in first)


def test_transformers_run_gives_identical_files_for_a_seed(write_config, tiny_model, tiny_tokenizer, tmp_path):
    outputs = []
    for name in ("a", "b"):
        cfg = load_synth_config(
            write_config(
                generator={"backend": "transformers", "model": "tiny", "batch_size": 3, "max_new_tokens": 6},
                families=[{"name": "sts", "examples_per_task": 4}],
                output=f"{name}/synth.jsonl",
                filters={"language": None, "min_words": 1},
            )
        )
        run_synth(cfg, backend=_tiny_backend(tiny_model, tiny_tokenizer, max_new_tokens=6), progress=False)
        outputs.append((cfg.output_path.read_text(), cfg.sidecar("rejects.jsonl").read_text()))
    assert outputs[0] == outputs[1]
    assert sum(len(text.splitlines()) for text in outputs[0]) == 4


def test_cli_runs_a_config_and_reports_bad_ones(write_config, openai_server, capsys):
    server = openai_server(_json_reply)
    path = write_config(generator={"backend": "openai", "model": "canned-model", "base_url": server.base_url}, format="json")
    assert main(["synth", str(path), "families.1.examples_per_task=2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "asked 8, parsed 8, kept 8 (100.0%)" in out and "examples/min" in out
    assert main(["synth", str(write_config(generator={"backend": "nope", "model": "m"}))]) == 1
    assert "generator.backend = 'nope': unknown backend" in capsys.readouterr().err
