"""A finished conversion is shareable: a hub model card, the recipe as run, provenance, no machine paths;
recipes travel (URL, hf://, model folder), differ field by field, and a folder can be pushed."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from tiny_project import TINY_RECIPE, make_tiny_project

from llm2vec_lite.cli import main
from llm2vec_lite.recipe import load_recipe

FAST = ["stages.0.steps=2", "stages.1.steps=2", "stages.2.steps=2", "eval.datasets=[dev]", "eval.data_dir=./sts"]
_STS = "sentence1\tsentence2\tscore\na cat sits on the mat.\ta cat sits on the mat.\t5\n" \
       "a cat sits on the mat.\tthe dog runs past.\t1\ntwo children eat.\ttwo children eat.\t5\nthe river.\tgreen grass.\t0\n"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llm2vec_lite", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    """The tiny project converted through the CLI (2 steps a stage, evaluated): its ``out/final``."""
    root = tmp_path_factory.mktemp("share") / "proj"
    make_tiny_project(root)
    (root / "sts").mkdir()
    (root / "sts" / "dev.tsv").write_text(_STS, encoding="utf-8")
    proc = _cli("convert", "recipe.yaml", *FAST, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "out" / "final"


def test_card_metadata_parses_with_model_card_and_validates(converted):
    from huggingface_hub import ModelCard, ModelCardData

    card = ModelCard.load(converted / "README.md")
    data = card.data
    assert data.library_name == "sentence-transformers" and data.pipeline_tag == "sentence-similarity"
    assert {"llm2vec-lite", "sentence-transformers", "feature-extraction", "llama"} <= set(data.tags)
    # a local base folder without a card: no base_model, licence "other", and the card says why
    assert data.base_model is None and data.license == "other"
    assert "License: `other`" in card.text and "set base_model_id in the recipe" in card.text
    # model-index: every score of the eval block, as eval.json has it
    scores = json.loads((converted / "eval.json").read_text())["datasets"]["dev"]
    found = {(r.dataset_name, r.metric_type): r.metric_value for r in data.eval_results}
    assert found == {("dev", "cosine_spearman"): round(scores["spearman"], 2),
                     ("dev", "cosine_pearson"): round(scores["pearson"], 2)}
    # the metadata validates: rebuilding the card data from the parsed YAML raises on a bad model-index
    again = ModelCardData(**data.to_dict(), ignore_metadata_errors=False)
    assert again.eval_results == data.eval_results and again.model_name == "tiny-smoke"
    for kind in ("mntp", "simcse", "supervised"):
        assert f"| {kind} | 2 | 4 | 8 |" in card.text  # steps, batch, LoRA rank per stage
    assert "`text.txt` (200 rows)" in card.text and "`triplets.tsv` (48 rows)" in card.text
    assert "## Evaluation" in card.text and "## Recipe" in card.text


def test_card_names_only_the_stages_that_ran(tmp_path):
    """A recipe without a SimCSE stage gets no SimCSE in its method line (the old card claimed it)."""
    from llm2vec_lite.sharing.card import build_card

    stages = TINY_RECIPE.split("stages:")[1].split("  - kind: simcse")[0]
    supervised = "  - kind: supervised" + TINY_RECIPE.split("  - kind: supervised")[1]
    recipe_path = make_tiny_project(tmp_path, TINY_RECIPE.split("stages:")[0] + "stages:" + stages + supervised)
    card = build_card(load_recipe(recipe_path), tmp_path / "nothing-yet")
    assert "masked next-token prediction, then supervised contrastive learning" in card.text
    assert "SimCSE" not in card.text
    assert "| 02-supervised | supervised |" in card.text


def test_every_score_of_the_eval_block_goes_into_the_model_index(tmp_path):
    """STS datasets (hub or local) and local suite tasks each give model-index entries."""
    from huggingface_hub import ModelCard

    from llm2vec_lite.sharing.card import build_card

    recipe = load_recipe(make_tiny_project(tmp_path))
    final = tmp_path / "final"
    final.mkdir()
    sts = {"spearman": 81.234, "pearson": 80.5, "n_pairs": 1500, "seconds": 3.0}
    suite = {"model": "tiny-smoke", "mean": 50.0, "type_means": {"retrieval": 40.0, "clustering": 60.0},
             "tasks": {"scifact-mini": {"type": "retrieval", "metric": "nDCG@10", "score": 40.0},
                       "topics": {"type": "clustering", "metric": "V-measure", "score": 60.0}}}
    (final / "eval.json").write_text(json.dumps({
        "model": "tiny-smoke", "average": {"spearman": 81.234, "pearson": 80.5},
        "datasets": {"stsb": {**sts, "source": "mteb/stsbenchmark-sts:test"}, "dev": {**sts, "source": "dev.tsv"}},
        "suite": suite,
    }))
    card = ModelCard(str(build_card(recipe, final)))
    found = {(r.task_type, r.dataset_type, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert found == {
        ("STS", "mteb/stsbenchmark-sts", "cosine_spearman"): 81.23, ("STS", "mteb/stsbenchmark-sts", "cosine_pearson"): 80.5,
        ("STS", "dev", "cosine_spearman"): 81.23, ("STS", "dev", "cosine_pearson"): 80.5,
        ("Retrieval", "scifact-mini", "ndcg_at_10"): 40.0, ("Clustering", "topics", "v_measure"): 60.0,
    }
    assert "mean of type means" in card.text and "| stsb" in card.text


def test_card_template_from_the_recipe_replaces_the_body(tmp_path):
    from huggingface_hub import ModelCard

    from llm2vec_lite.sharing.card import build_card

    recipe_path = make_tiny_project(tmp_path)
    (tmp_path / "card.md").write_text("---\n{{ card_data }}\n---\n\n# {{ name }}: {{ stages | length }} stages\n")
    recipe = load_recipe(recipe_path, ["card_template=./card.md"])
    text = str(build_card(recipe, tmp_path / "none"))
    assert "# tiny-smoke: 3 stages" in text
    assert ModelCard(text).data.library_name == "sentence-transformers"
    assert load_recipe(recipe_path).fingerprint == recipe.fingerprint  # a card template trains nothing


def test_folder_names_no_directory_of_the_machine(converted):
    root = converted.parents[1]
    needles = [str(root).encode(), str(root.parent).encode(), str(Path.home()).encode()]
    for path in converted.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(n in data for n in needles), f"{path.name} names a folder of this machine"
    provenance = json.loads((converted / "provenance.json").read_text())
    assert provenance["recipe"]["recipe_folder"] == "../.."
    assert [d["file"] for d in provenance["data"]] == ["text.txt", "sentences.txt", "triplets.tsv"]
    assert all(len(d["sha256"]) == 64 and d["rows"] > 0 for d in provenance["data"])
    assert [s["steps"] for s in provenance["stages"]] == [2, 2, 2]
    assert all(s["wall_time_s"] > 0 and s["hardware"]["cpu"] for s in provenance["stages"])
    assert {"torch", "transformers", "llm2vec-lite"} <= set(provenance["versions"])
    assert json.loads((converted / "eval.json").read_text())["datasets"]["dev"]["source"] == "dev.tsv"


def test_recipe_yaml_reruns_to_the_same_fingerprint(converted, tmp_path):
    root = converted.parents[1]
    original = load_recipe(root / "recipe.yaml", FAST)
    provenance = json.loads((converted / "provenance.json").read_text())
    for spec in (converted, converted / "recipe.yaml"):  # the folder, or its recipe.yaml as is
        again = load_recipe(spec)
        assert again.fingerprint == original.fingerprint == provenance["recipe"]["fingerprint"]
        assert [again.stage_fingerprint(i) for i in range(3)] == [s["fingerprint"] for s in provenance["stages"]]
    # another machine: the project (data, base model) and the model folder copied elsewhere
    other = tmp_path / "elsewhere" / "proj"
    shutil.copytree(root, other, ignore=shutil.ignore_patterns("0*-*"))
    assert load_recipe(other / "out" / "final").fingerprint == original.fingerprint
    # and it trains there: the same stage fingerprints, nothing of the first run reused
    proc = _cli("convert", "out/final", "output_dir=./rerun", cwd=other)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for s in provenance["stages"]:
        assert json.loads((other / "rerun" / s["stage"] / "stage.json").read_text())["fingerprint"] == s["fingerprint"]


def test_changed_data_is_reported_and_strict_refuses(converted, tmp_path):
    root = tmp_path / "proj"
    shutil.copytree(converted.parents[1], root, ignore=shutil.ignore_patterns("0*-*"))
    with (root / "triplets.tsv").open("a") as f:
        f.write("one more\tanchor\trow\n")
    proc = _cli("convert", "out/final", "--strict", "--dry-run", cwd=root)
    assert proc.returncode == 1
    assert "stages[2].data: triplets.tsv: sha256" in proc.stderr and "--strict: not starting" in proc.stderr
    lenient = _cli("convert", "out/final", "--dry-run", cwd=root)
    assert lenient.returncode == 0 and "triplets.tsv: sha256" in lenient.stderr


def test_a_path_outside_the_project_becomes_its_name(tmp_path):
    from llm2vec_lite.sharing.written import written_recipe_text

    recipe_path = make_tiny_project(tmp_path / "a" / "proj")
    outside = tmp_path / "b" / "elsewhere.txt"
    outside.parent.mkdir()
    shutil.copy(recipe_path.parent / "text.txt", outside)
    recipe = load_recipe(recipe_path, [f"stages.0.data.path={outside}"])
    text, left_out = written_recipe_text(recipe)
    assert "<elsewhere.txt>" in text and str(tmp_path) not in text
    assert [(o.field, o.shown) for o in left_out] == [("stages[0].data.path", "<elsewhere.txt>")]
    shared = recipe_path.parent / "shared.yaml"
    shared.write_text(text)
    with pytest.raises(Exception, match=r"stages\[0\]\.data\.path = '<elsewhere.txt>': stands for a file"):
        load_recipe(shared)
    assert load_recipe(shared, [f"stages.0.data.path={outside}"]).fingerprint == recipe.fingerprint
    # written with ~/ (the shipped GGUF recipes): names no user, kept as written
    home = load_recipe(recipe_path, ["base_model=~/.cache/some/model.gguf"], check_paths=False)
    text, left_out = written_recipe_text(home)
    assert "base_model: ~/.cache/some/model.gguf" in text and str(Path.home()) not in text
    assert left_out[0].field == "base_model" and left_out[0].path == Path.home() / ".cache/some/model.gguf"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def served(tmp_path):
    """A real HTTP server on a free port serving ``tmp_path/www``; yields (folder, base URL)."""
    www = tmp_path / "www"
    www.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_convert_reads_a_recipe_from_a_url(served, tmp_path, monkeypatch, capsys):
    www, url = served
    project = tmp_path / "proj"
    make_tiny_project(project)
    (www / "tiny.yaml").write_text(TINY_RECIPE)
    monkeypatch.chdir(project)  # a fetched recipe's relative paths resolve against the current folder
    assert main(["convert", f"{url}/tiny.yaml", "stages.1.steps=7", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "recipe tiny-smoke" in out and "7 x batch 4" in out and str(project / "out" / "01-mntp") in out
    assert load_recipe(f"{url}/tiny.yaml").fingerprint == load_recipe(project / "recipe.yaml").fingerprint

    assert main(["convert", f"{url}/missing.yaml", "--dry-run"]) == 1
    assert "missing.yaml: the server answered 404" in capsys.readouterr().err
    (www / "evil.yaml").write_text("name: !!python/object/apply:os.system ['echo owned']\n")
    assert main(["convert", f"{url}/evil.yaml", "--dry-run"]) == 1
    assert "not valid YAML" in capsys.readouterr().err
    (www / "huge.yaml").write_text("# " + "x" * (1 << 20) + "\n")
    assert main(["convert", f"{url}/huge.yaml", "--dry-run"]) == 1
    assert "larger than 1024 KiB" in capsys.readouterr().err


def test_unreachable_url_is_a_clear_error(capsys):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["recipe", "diff", f"http://127.0.0.1:{port}/r.yaml", "smollm2-135m-cpu"]) == 1
    assert "cannot reach the server" in capsys.readouterr().err


def test_hub_recipes_go_through_hf_hub_download(tmp_path, monkeypatch, capsys):
    import huggingface_hub
    from huggingface_hub import constants

    project = tmp_path / "proj"
    make_tiny_project(project)
    asked = []

    def download(repo_id, filename, revision=None, **kwargs):
        asked.append((repo_id, filename, revision))
        if filename.endswith("provenance.json"):
            raise huggingface_hub.errors.LocalEntryNotFoundError("not cached")
        return str(project / "recipe.yaml")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    monkeypatch.chdir(project)
    recipe = load_recipe("hf://me/tiny@v1/recipes/recipe.yaml")
    assert asked[0] == ("me/tiny", "recipes/recipe.yaml", "v1")
    assert recipe.fingerprint == load_recipe(project / "recipe.yaml").fingerprint
    load_recipe("me/tiny-encoder")  # a hub model id: its recipe.yaml
    assert asked[-2][:2] == ("me/tiny-encoder", "recipe.yaml")
    monkeypatch.undo()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(project)
    assert main(["convert", "hf://me/tiny/recipe.yaml", "--dry-run"]) == 1
    assert "cannot fetch recipe.yaml from the hub" in capsys.readouterr().err


def test_recipe_diff_of_two_shipped_recipes(capsys):
    assert main(["recipe", "diff", "smollm2-135m-cpu", "smollm2-135m-unsup-cpu"]) == 1
    out = capsys.readouterr().out
    assert "stages[2]: only in A (supervised)" in out
    assert "name: 'smollm2-135m-cpu' -> 'smollm2-135m-unsup-cpu'" in out
    assert main(["recipe", "diff", "smollm2-135m-cpu", "smollm2-135m-cpu"]) == 0
    assert "no differences" in capsys.readouterr().out


def test_recipe_diff_makes_defaults_explicit(tmp_path, capsys):
    recipe_path = make_tiny_project(tmp_path)
    spelled = tmp_path / "spelled.yaml"
    spelled.write_text(TINY_RECIPE.replace("seed: 0\n", "seed: 0\ndtype: float32\nwindow: full\n"))
    assert main(["recipe", "diff", str(recipe_path), str(spelled)]) == 0
    changed = tmp_path / "changed.yaml"
    changed.write_text(TINY_RECIPE.replace("    dropout: 0.1\n", "    dropout: 0.2\n    warmup_steps: 1\n"))
    assert main(["recipe", "diff", str(recipe_path), str(changed)]) == 1
    out = capsys.readouterr().out
    assert "stages[1].dropout: 0.1 -> 0.2" in out and "stages[1].warmup_steps: 0 -> 1" in out


def test_push_dry_run_lists_the_files(converted, capsys):
    assert main(["push", str(converted), "me/tiny-encoder", "--dry-run"]) == 0
    out = capsys.readouterr().out
    fingerprint = json.loads((converted / "provenance.json").read_text())["recipe"]["fingerprint"]
    assert f"commit message: llm2vec-lite: tiny-smoke (recipe fingerprint {fingerprint})" in out
    listed = {line.split()[0] for line in out.splitlines() if line.startswith("  ")}
    assert {"README.md", "recipe.yaml", "provenance.json", "eval.json", "model.safetensors",
            "1_Pooling/config.json"} <= listed
    assert "warning" not in out


def test_push_without_a_token_fails_before_reading_the_folder(tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    assert main(["push", str(tmp_path / "does-not-exist"), "me/x"]) == 1
    assert "cannot push: no Hugging Face token" in capsys.readouterr().err


def test_dry_run_names_the_command_that_makes_missing_data(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["convert", "e5-mistral-7b", "--dry-run"]) == 1
    captured = capsys.readouterr()
    assert "recipe e5-mistral-7b" in captured.out  # the plan is still printed
    assert "data MISSING: " in captured.out and "e5-synth.jsonl (make it with `llm2vec-lite synth" in captured.out
    assert "data files are missing" in captured.err and "llm2vec-lite synth" in captured.err


def test_hub_base_model_and_hub_datasets_go_into_the_metadata(tmp_path):
    from llm2vec_lite.sharing.card import card_metadata

    recipe = load_recipe("e5-mistral-7b", check_paths=False)
    data, _ = card_metadata(recipe, tmp_path, {}, {})
    assert data.base_model == "mistralai/Mistral-7B-v0.1"
    assert data.datasets == ["BeastyZ/E5-R", "princeton-nlp/datasets-for-simcse"]
