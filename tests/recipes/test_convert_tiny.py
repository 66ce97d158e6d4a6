"""CI smoke: the tiny-smoke recipe converts end to end through the CLI; every stage's loss falls."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny_project import make_tiny_project


@pytest.fixture(scope="module")
def recipe_path(tmp_path_factory) -> Path:
    return make_tiny_project(tmp_path_factory.mktemp("cli"))


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llm2vec_lite", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_dry_run_prints_the_plan_without_training(recipe_path):
    root = recipe_path.parent
    proc = _cli("convert", "recipe.yaml", "stages.1.steps=7", "--dry-run", cwd=root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    for kind in ("mntp", "simcse", "supervised"):
        assert f"{kind}: not trained yet" in out
    assert "7 x batch 4, max_length 64 -> at most 1,792 tokens" in out
    assert "8,192 trainable parameters (r=8)" in out  # 2 layers x 7 linears x r(in+out), from config only
    assert "lr:     linear, peak 0.0001 after 0 warmup steps, 2.5e-05 at the last step 4 (25% of peak)" in out
    assert "negatives: 4 candidates per query (the 4 second dropout views: 1 positive, 3 negatives)" in out
    assert "negatives: 8 candidates per query (4 positives + 4 hard negatives: 1 positive, 7 negatives)" in out
    assert str(root / "out" / "02-simcse") in out
    assert not (root / "out").exists()


def test_flags_may_stand_between_recipe_and_overrides(recipe_path):
    proc = _cli("convert", "recipe.yaml", "--dry-run", "stages.1.steps=7", cwd=recipe_path.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "7 x batch 4" in proc.stdout
    bad = _cli("convert", "recipe.yaml", "--dry-run", "--no-such-flag", cwd=recipe_path.parent)
    assert bad.returncode == 2 and "unrecognized arguments: --no-such-flag" in bad.stderr


def test_tiny_recipe_converts_end_to_end_and_encodes(recipe_path):
    from llm2vec_lite.encoder import Encoder

    root = recipe_path.parent
    (root / "sts").mkdir(exist_ok=True)
    pairs = ["a cat sits on the mat.\ta cat sits on the mat.\t5", "a cat sits on the mat.\tthe dog runs past.\t1",
             "two children eat.\ttwo children eat.\t5", "the river.\tgreen grass.\t0"]
    (root / "sts" / "dev.tsv").write_text("sentence1\tsentence2\tscore\n" + "\n".join(pairs) + "\n")
    toy = root / "toy-retrieval"  # a local retrieval task, scored with the STS set and followed in the curve
    toy.mkdir(exist_ok=True)
    topics = ["a cat sits on the mat.", "two children eat.", "the river.", "the dog runs past."]
    (toy / "corpus.jsonl").write_text("".join(json.dumps({"_id": str(i), "text": t}) + "\n" for i, t in enumerate(topics)))
    (toy / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": t[:8]}) + "\n" for i, t in enumerate(topics)))
    (toy / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\t{i}\t1\n" for i in range(4)))
    evaluation = ["eval.datasets=[dev]", "eval.data_dir=./sts", "eval.tasks=[./toy-retrieval]"]
    evaluation += ["encoder_max_length=96"]  # the saved encoder's limit; not in the fingerprint
    # One fixed batch a stage (limit = batch) and a larger learning rate, so 4 steps visibly learn.
    learn = [f"stages.{i}.{k}" for i in range(3) for k in ("learning_rate=3e-3",)]
    learn += ["stages.0.data.limit=24", "stages.1.data.limit=4", "stages.2.data.limit=4"]
    evaluation += learn + ["stages.1.eval_every=2", "stages.2.eval_every=3"]  # scored while training
    proc = _cli("convert", "recipe.yaml", *evaluation, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = root / "out"
    for i, kind in enumerate(("mntp", "simcse", "supervised")):
        info = json.loads((out / f"{i + 1:02d}-{kind}" / "stage.json").read_text())
        assert info["kind"] == kind and info["metrics"]["steps"] == 4
        assert np.isfinite(info["metrics"]["final_loss"])
        lines = (out / f"{i + 1:02d}-{kind}" / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(ln)["step"] for ln in lines] == [1, 2, 3, 4]
        losses = [json.loads(ln)["loss"] for ln in lines]
        assert losses[-1] < losses[0], (kind, losses)  # it trains: the loss falls on its own batch
    for folder, steps in (("02-simcse", [2, 4]), ("03-supervised", [3, 4])):  # every N steps and the last
        curve = [json.loads(ln) for ln in (out / folder / "eval_curve.jsonl").read_text().splitlines()]
        assert [row["step"] for row in curve] == steps, folder
        assert all(-100 <= row["dev"] <= 100 for row in curve) and curve[0]["train_s"] <= curve[1]["train_s"]
        assert all(0 <= row["toy-retrieval"] <= 100 for row in curve)
    assert not (out / "01-mntp" / "eval_curve.jsonl").exists()
    evaluation_file = json.loads((out / "final" / "eval.json").read_text())
    assert list(evaluation_file["datasets"]) == ["dev"] and evaluation_file["datasets"]["dev"]["n_pairs"] == 4
    suite = evaluation_file["suite"]
    assert list(suite["tasks"]) == ["toy-retrieval", "dev"]  # the STS set joins the suite
    assert suite["tasks"]["toy-retrieval"]["metric"] == "nDCG@10" and suite["tasks"]["dev"]["metric"] == "Spearman"
    assert suite["type_means"] == {"retrieval": suite["tasks"]["toy-retrieval"]["score"],
                                   "sts": suite["tasks"]["dev"]["score"]}
    assert "## Evaluation" in (out / "final" / "README.md").read_text()
    assert "mean of type means" in (out / "final" / "README.md").read_text()
    enc = Encoder.from_pretrained(out / "final")
    assert enc.pooling == "mean" and enc.max_length == 96
    vecs = enc.encode(["a cat sits on the mat.", "the dog runs past the river."])
    assert vecs.shape == (2, 32) and np.isfinite(vecs).all()
    assert "tiny-smoke" in (out / "final" / "README.md").read_text()
    from llm2vec_lite.recipe import load_recipe

    settings = json.loads((out / "final" / "llm2vec_lite.json").read_text())
    assert settings["recipe_fingerprint"] == load_recipe(recipe_path, evaluation).fingerprint
    assert settings["task_instructions"] is False  # no stage put an instruction on its queries
    assert json.loads((out / "final" / "config.json").read_text())["is_causal"] is False

    again = _cli("convert", "recipe.yaml", *evaluation, cwd=root)  # everything finished: nothing retrains
    assert again.returncode == 0 and "skipping" in again.stderr


def test_cli_reports_recipe_errors_with_exit_1(recipe_path):
    proc = _cli("convert", "recipe.yaml", "stages.0.steps=-1", cwd=recipe_path.parent)
    assert proc.returncode == 1
    assert "steps" in proc.stderr


def test_causal_recipe_trains_and_saves_a_causal_encoder(tmp_path):
    """bidirectional: false (E5-mistral, CFT papers) must stay causal through training and saving."""
    from tiny_project import TINY_RECIPE

    from llm2vec_lite.encoder import Encoder

    text = TINY_RECIPE.replace("pooling: mean", "pooling: last_token\nbidirectional: false")
    text = text.split("  - kind: mntp")[0] + "  - kind: supervised" + text.split("  - kind: supervised")[1]
    recipe = make_tiny_project(tmp_path, text)
    proc = _cli("convert", recipe.name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    final = tmp_path / "out" / "final"
    assert json.loads((final / "config.json").read_text()).get("is_causal", True) is not False
    enc = Encoder.from_pretrained(final)
    assert enc.bidirectional is False
    ids = enc.tokenizer(["a cat sits on the mat"], return_tensors="pt")["input_ids"]
    changed = ids.clone()
    changed[0, -1] = (int(ids[0, -1]) + 1) % enc.model.config.vocab_size
    import torch

    with torch.no_grad():
        first = enc.model(input_ids=ids).last_hidden_state[0, 0]
        again = enc.model(input_ids=changed).last_hidden_state[0, 0]
    torch.testing.assert_close(first, again)  # causal: the first token never sees the last


def test_base_model_with_only_pickled_weights_is_refused_before_loading(tmp_path):
    """The project never unpickles weights: a .bin-only base model is an error naming `revision`."""
    from llm2vec_lite.errors import RecipeError
    from llm2vec_lite.pipeline import convert
    from llm2vec_lite.recipe import load_recipe

    recipe_path = make_tiny_project(tmp_path)
    model_dir = tmp_path / "tiny-llama"
    weights = next(model_dir.glob("*.safetensors"))
    weights.rename(model_dir / "pytorch_model.bin")  # the name is enough: the check reads no weights
    with pytest.raises(RecipeError, match=r"only pickled weights \(pytorch_model.bin\).*set `revision`"):
        convert(load_recipe(recipe_path))
    assert not (tmp_path / "out").exists()  # nothing written


def test_simcse_projection_is_fitted_trained_through_and_shipped(tmp_path):
    """projection: on simcse fits a whitening on its texts; supervised trains through it; final/ has it."""
    import torch

    from llm2vec_lite.encoder import Encoder
    from llm2vec_lite.projection import PROJECTION_DIR, load_projection

    recipe = make_tiny_project(tmp_path)
    overrides = [
        "stages.1.projection.mode=whiten", "stages.1.projection.dims=8", "stages.1.projection.samples=16",
        "stages.0.steps=1", "stages.1.steps=2", "stages.2.steps=2",
    ]
    proc = _cli("convert", recipe.name, *overrides, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "fitted a whiten projection (32 -> 8) on 16 texts" in proc.stderr
    assert "refitted a whiten projection (32 -> 8) on 16 texts" in proc.stderr  # refit: true by default
    out = tmp_path / "out"
    assert not (out / "01-mntp" / PROJECTION_DIR).exists()
    fitted = load_projection(out / "02-simcse")
    assert fitted is not None and fitted.info["texts"] == 16 and fitted.out_dim == 8
    carried = load_projection(out / "03-supervised")  # trained through, not refitted
    torch.testing.assert_close(carried.weight, fitted.weight)
    enc = Encoder.from_pretrained(out / "final")
    assert enc.dim == 8
    metrics = [json.loads(ln) for ln in (out / "02-simcse" / "metrics.jsonl").read_text().splitlines()]
    assert {"pos_cos", "neg_cos", "top1"} <= set(metrics[0])  # what a user needs to see it learn
    for stage, keys in (("01-mntp", {"masked_acc"}), ("03-supervised", {"pos_cos", "neg_cos", "top1"})):
        first = json.loads((out / stage / "metrics.jsonl").read_text().splitlines()[0])
        assert keys <= set(first)
        assert all(-1 <= first[k] <= 1 for k in keys) and 0 <= first.get("top1", first.get("masked_acc")) <= 1
    st = pytest.importorskip("sentence_transformers")
    theirs = st.SentenceTransformer(str(out / "final"), device="cpu").encode(["a cat sits on the mat."])
    ours = enc.encode(["a cat sits on the mat."])
    assert theirs.shape == (1, 8)
    # not equal: this tokenizer adds a BOS, which ST pools and we do not (exact match without BOS is
    # tests/integrations/test_sentence_transformers.py); whitening magnifies that difference
    assert float((theirs * ours).sum()) > 0.9


def test_num_layers_prunes_the_base_before_stage_one(tmp_path):
    from tiny_project import TINY_RECIPE

    from llm2vec_lite.encoder import Encoder

    text = TINY_RECIPE.replace("pooling: mean", "pooling: mean\nnum_layers: 1")
    recipe = make_tiny_project(tmp_path, text)
    too_deep = _cli("convert", recipe.name, "num_layers=3", "--dry-run", cwd=tmp_path)  # tiny has 2 blocks
    assert too_deep.returncode == 1 and "num_layers = 3" in too_deep.stderr and "choose 1..2" in too_deep.stderr
    proc = _cli("convert", recipe.name, "stages.0.steps=1", "stages.1.steps=1", "stages.2.steps=1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for folder in ("01-mntp", "02-simcse", "03-supervised", "final"):
        assert json.loads((tmp_path / "out" / folder / "config.json").read_text())["num_hidden_layers"] == 1
    enc = Encoder.from_pretrained(tmp_path / "out" / "final")
    assert len(enc.model.layers) == 1 and enc.encode("a cat sits").shape == (32,)
