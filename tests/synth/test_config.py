"""The synth config: validation errors name the file and field and say what would be valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm2vec_lite.errors import SynthError
from llm2vec_lite.synth.config import load_synth_config
from llm2vec_lite.synth.prompts import PromptSet, shipped_prompt_sets

REPO = Path(__file__).resolve().parents[2]


def test_defaults_and_paths_resolve_against_the_config_folder(write_config, tmp_path):
    cfg = load_synth_config(write_config())
    assert cfg.output_path == tmp_path / "out" / "synth.jsonl"
    assert cfg.tasks_path == tmp_path / "out" / "synth.tasks.jsonl"
    assert cfg.sidecar("rejects.jsonl") == tmp_path / "out" / "synth.rejects.jsonl"
    assert cfg.instruction_format.format(task="Find x.") == "Instruct: Find x.\nQuery: "


def test_overrides_apply_and_change_the_fingerprint(write_config):
    path = write_config()
    a = load_synth_config(path)
    b = load_synth_config(path, ["generator.temperature=0.3", "families.0.tasks=7"])
    assert (b.generator.temperature, b.families[0].tasks) == (0.3, 7)
    assert a.fingerprint != b.fingerprint
    assert load_synth_config(path, ["output=elsewhere.jsonl"]).fingerprint == a.fingerprint


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"generator": {"backend": "openia"}}, "generator.backend = 'openia': unknown backend; known: openai,"),
        ({"families": [{"name": "clustering"}]}, "families[0].name = 'clustering': unknown family; prompt set v2 has retrieval, sts"),
        ({"exclude": ["missing.tsv"]}, "exclude[0] = 'missing.tsv': file not found"),
        ({"generator": {"temprature": 0.5}}, "generator.temprature = 0.5: unknown key (did you mean 'temperature'?)"),
        ({"generator": {"top_p": 0}}, "generator.top_p = 0: must be > 0"),
        ({"instruction_format": "Query: "}, "instruction_format = 'Query: ': must contain {task}"),
        ({"prompts": "v9"}, "prompts = 'v9': no prompt set 'v9'"),
        ({"families": []}, "families = []: must have at least 1 item(s)"),
    ],
)
def test_bad_config_errors_name_file_field_and_fix(write_config, fields, message):
    with pytest.raises(SynthError) as e:
        load_synth_config(write_config(**fields))
    assert "synth.yaml" in str(e.value)
    assert message in str(e.value)


def test_every_problem_is_reported_at_once(write_config):
    path = write_config(generator={"backend": "nope", "temperature": -1}, exclude=["gone.txt"])
    with pytest.raises(SynthError, match="3 problems") as e:
        load_synth_config(path)
    assert "generator.temperature = -1: must be >= 0" in str(e.value)


def test_flags_without_a_file_build_a_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_synth_config(None, ["generator.model=m", "generator.backend=scripted"], base={"families": [{"name": "sts"}]})
    assert cfg.output_path == tmp_path / "synth.jsonl"


def test_shipped_prompt_sets_load_and_cover_both_formats():
    assert {"v1", "v2"} <= set(shipped_prompt_sets())
    for version in shipped_prompt_sets():
        prompts = PromptSet.load(version)
        for fam in prompts.families.values():
            assert fam.json is not None and set(fam.fields) == {"query", "positive", "negative"}
            values = fam.sample_constraints(__import__("random").Random(0))
            task = fam.task or "Given a dish, retrieve recipes."
            fam.json.substitute(task=task, **values)  # every placeholder is filled
            fam.fields["negative"].substitute(task=task, query="q", positive="p", **values)


def test_a_prompt_folder_of_your_own_is_checked(write_config, tmp_path):
    folder = tmp_path / "my-prompts"
    folder.mkdir()
    (folder / "manifest.yaml").write_text(
        "version: mine\nfamilies:\n  qa:\n    task: Answer.\n    json: qa.txt\n", encoding="utf-8"
    )
    (folder / "qa.txt").write_text("Write about $colour.", encoding="utf-8")
    with pytest.raises(SynthError, match=r"unknown placeholder\(s\) \['colour'\]"):
        load_synth_config(write_config(prompts="./my-prompts", families=[{"name": "qa"}], format="json"))
    (folder / "qa.txt").write_text("Write a JSON example for: $task", encoding="utf-8")
    cfg = load_synth_config(write_config(prompts="./my-prompts", families=[{"name": "qa"}], format="json"))
    assert PromptSet.load(cfg.prompts).version == "mine"


@pytest.mark.parametrize("path", sorted((REPO / "recipes" / "synth").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_synth_configs_validate(path):
    cfg = load_synth_config(path, check_paths=False)
    assert cfg.families
    families = PromptSet.load(cfg.prompts).families  # templates exist, use only known placeholders
    assert {f.name for f in cfg.families} <= set(families)


def test_docs_field_reference_is_in_sync_with_the_schema():
    from llm2vec_lite.recipe import field_reference_markdown
    from llm2vec_lite.synth.config import REFERENCE_MODELS

    text = (REPO / "docs" / "synth.md").read_text(encoding="utf-8")
    section = text.split("<!-- fields:start -->", 1)[1].split("<!-- fields:end -->", 1)[0].strip()
    assert section == field_reference_markdown(REFERENCE_MODELS).strip(), (
        "docs/synth.md is out of date; regenerate its table with "
        "field_reference_markdown(llm2vec_lite.synth.config.REFERENCE_MODELS)"
    )


def test_a_malformed_override_is_a_synth_error_naming_it(write_config):
    with pytest.raises(SynthError, match="override 'generator.temperature': expected KEY=VALUE"):
        load_synth_config(write_config(), ["generator.temperature"])
