"""The race script's own logic (benchmarks/llm2vec_race.py, benchmarks/race/export.py), without llm2vec.

The llm2vec side itself needs its own virtualenv and minutes of CPU; it is exercised by the smoke
command in docs/performance.md, not here. These tests cover what decides the race is fair: the
shared shapes, the llm2vec-lite command line, the table, and the folder rewrite for transformers 4.44.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmark_module import load_benchmark

ROOT = Path(__file__).resolve().parents[2]


race = load_benchmark("llm2vec_race")
export = load_benchmark("race_export", "race/export.py")


def test_defaults_race_every_stage_in_bf16():
    args = race.parse_args([])
    assert args.stages == ["mntp", "simcse", "supervised"] and args.sides == ["llm2vec", "lite"]
    assert args.precision == "bf16" and args.venv == ROOT / ".venv-llm2vec"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--stages", "mntp,dpo"], "unknown dpo"),
        (["--sides", "both"], "valid sides are llm2vec and lite"),
        (["--warmup", "0"], "--warmup must be at least 1"),
        (["--batch", "1"], "in-batch negatives"),
        (["--precision", "fp16"], "invalid choice"),
    ],
)
def test_bad_arguments_say_why(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        race.parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_shapes_come_from_the_cpu_recipe():
    import yaml

    recipe = yaml.safe_load(race.DEFAULT_RECIPE.read_text())
    mntp = race.stage_shapes(recipe, "mntp", None)
    supervised = race.stage_shapes(recipe, "supervised", None)
    assert (mntp["batch"], mntp["max_length"], mntp["mask_probability"]) == (8, 128, 0.2)
    assert (supervised["batch"], supervised["max_length"], supervised["temperature"]) == (64, 64, 0.05)
    assert supervised["lora"] == {"r": 16, "alpha": 32, "dropout": 0.05}
    assert race.stage_shapes(recipe, "simcse", 4)["batch"] == 4


def test_shapes_refuse_what_cannot_be_raced_fairly():
    recipe = {"name": "x", "lora": {"r": 8, "target_modules": ["q_proj"]}, "stages": [{"kind": "mntp", "batch_size": 2}]}
    with pytest.raises(SystemExit, match="all-linear LoRA only"):
        race.stage_shapes(recipe, "mntp", None)
    with pytest.raises(SystemExit, match="has no simcse stage"):
        race.stage_shapes(recipe, "simcse", None)


def test_lite_command_runs_train_py_at_the_same_shapes(tmp_path):
    args = race.parse_args(["--precision", "fp32", "--batch", "4", "--threads", "2", "--steps", "3"])
    cmd = race.lite_command("simcse", tmp_path / "model", tmp_path / "out.json", args)
    assert cmd[1] == str(race.LITE_BENCH)
    flags = dict(zip(cmd[2::2], cmd[3::2], strict=True))
    assert flags["--model"] == str(tmp_path / "model") and flags["--stages"] == "simcse"
    assert (flags["--autocast"], flags["--batch"], flags["--threads"], flags["--steps"]) == ("none", "4", "2", "3")
    assert flags["--recipe"] == str(race.DEFAULT_RECIPE) and flags["--json"] == str(tmp_path / "out.json")


def test_table_gives_the_speed_up_and_leaves_missing_sides_blank():
    rows = [
        {"side": "llm2vec", "kind": "mntp", "tok_per_s": 200.0, "peak_rss_mib": 3000.0},
        {"side": "lite", "kind": "mntp", "tok_per_s": 500.0, "peak_rss_mib": 1500.0},
        {"side": "lite", "kind": "simcse", "tok_per_s": 300.0, "peak_rss_mib": 1000.0},
    ]
    shapes = {"mntp": {"batch": 8, "max_length": 128}, "simcse": {"batch": 32, "max_length": 64}}
    table = race.format_table(rows, shapes).splitlines()
    assert table[2] == "| mntp | 8 x 128 | 200 | 500 | 2.50x | 3000 | 1500 |"
    assert table[3] == "| simcse | 32 x 64 | - | 300 | - | - | 1000 |"


def test_a_relative_data_dir_reaches_both_sides_as_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = race.parse_args(["--data-dir", "data"])
    assert args.data_dir == tmp_path / "data"  # the lite side writes its recipes to a temporary folder
    cmd = race.lite_command("mntp", tmp_path / "model", tmp_path / "out.json", args)
    assert dict(zip(cmd[2::2], cmd[3::2], strict=True))["--data-dir"] == str(tmp_path / "data")


def test_missing_data_names_the_file(tmp_path):
    with pytest.raises(SystemExit, match="race data not found: .*wiki-sentences.txt"):
        race.data_file(tmp_path, "simcse")


def _saved_folder(tmp_path: Path) -> Path:
    """What transformers 5's save_pretrained writes, reduced to the fields the rewrite touches."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "llama", "dtype": "float32", "rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"},
    }))
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "TokenizersBackend"}))
    (folder / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE", "merges": [["Ġ", "t"], ["h", "e"]]}}))
    return folder


def test_rewrite_gives_transformers_4_what_it_reads(tmp_path):
    folder = _saved_folder(tmp_path)
    changed = export.make_readable_by_transformers4(folder)
    cfg = json.loads((folder / "config.json").read_text())
    tc = json.loads((folder / "tokenizer_config.json").read_text())
    tj = json.loads((folder / "tokenizer.json").read_text())
    assert cfg["rope_theta"] == 100000.0 and cfg["torch_dtype"] == "float32"
    assert tc["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert tc["model_input_names"] == ["input_ids", "attention_mask"]
    assert tj["model"]["merges"] == ["Ġ t", "h e"]
    assert len(changed) == 5
    assert export.make_readable_by_transformers4(folder) == []  # a second pass changes nothing


def test_rewrite_refuses_merges_it_cannot_join(tmp_path):
    folder = _saved_folder(tmp_path)
    (folder / "tokenizer.json").write_text(json.dumps({"model": {"merges": [["a b", "c"]]}}))
    with pytest.raises(ValueError, match="holds a space"):
        export.make_readable_by_transformers4(folder)


def test_rewritten_tokenizer_still_loads_and_tokenizes_the_same(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "a": 1, "b": 2, "c": 3, "ab": 4, "abc": 5}
    bpe = Tokenizer(models.BPE(vocab=vocab, merges=[("a", "b"), ("ab", "c")], unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="<unk>", pad_token="<unk>")
    folder = tmp_path / "tok"
    tok.save_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    before = tok("abc ab c")["input_ids"]
    export.make_readable_by_transformers4(folder)
    assert AutoTokenizer.from_pretrained(folder)("abc ab c")["input_ids"] == before == [5, 4, 3]


def test_export_is_reused_when_the_source_file_is_unchanged(tmp_path, monkeypatch):
    source = tmp_path / "m.gguf"
    source.write_bytes(b"gguf")
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / export.MARKER).write_text(json.dumps({"from": export._source_id(str(source))}))
    import llm2vec_lite.modeling as modeling

    monkeypatch.setattr(modeling, "load_model", lambda *a, **k: pytest.fail("exported again"))
    assert export.export_model(str(source), folder) == (folder, True)
