"""The two steps end to end on a scripted backend: output rows, summary, resume, dedupe, decontamination."""

from __future__ import annotations

import json

import pytest
from conftest import field_answer

from llm2vec_lite.errors import SynthError
from llm2vec_lite.synth import load_synth_config, run_synth


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_run_writes_instruction_tagged_rows_and_a_summary(write_config, scripted):
    scripted.answer = staticmethod(field_answer)
    cfg = load_synth_config(write_config())
    summary = run_synth(cfg, progress=False)

    tasks = _rows(cfg.tasks_path)
    assert [t["family"] for t in tasks] == ["retrieval", "retrieval"]  # sts has a fixed task
    rows = _rows(cfg.output_path)
    assert summary.asked == 2 * 3 + 4 and summary.kept == len(rows) > 0
    row = rows[0]
    assert set(row) == {"id", "family", "task", "instruction", "query", "positive", "negative", "provenance"}
    assert row["id"] == "retrieval/0000/000" and row["task"] == tasks[0]["task"]
    assert row["instruction"] == f"Instruct: {row['task']}\nQuery: "
    assert row["query"].startswith("how do people cook rice")  # label and the next line cut
    assert row["positive"].startswith("A passage about")  # "Sure, here it is:" dropped
    prov = row["provenance"]
    assert prov["generator"] == "scripted:canned" and prov["prompts"] == "v2" and prov["seed"] == 0
    assert prov["sampling"]["temperature"] == cfg.generator.temperature and "match" in prov["constraints"]
    sts = [r for r in rows if r["family"] == "sts"]
    assert sts and sts[0]["task"] == "Retrieve semantically similar text."
    saved = json.loads(cfg.sidecar("summary.json").read_text())
    assert saved["asked"] == summary.asked and saved["kept"] == summary.kept
    assert saved["kept"] + sum(saved["dropped"].values()) == saved["asked"]


def test_fields_are_generated_in_order_each_seeing_the_last(write_config, scripted):
    scripted.answer = staticmethod(field_answer)
    run_synth(load_synth_config(write_config(families=[{"name": "sts", "examples_per_task": 2}])), progress=False)
    query_call, positive_call, negative_call = scripted.calls
    assert all("Sentence:" in p for p in query_call)
    assert all("Say the same thing in other words" in p and "A passage about" in p for p in positive_call)
    # v2: the STS negative is written from the scene alone; a 135M model shown the query copied it
    assert all("A passage about" not in p and "It describes" in p for p in negative_call)


def test_prompt_set_v1_still_runs_and_shows_the_negative_the_query(write_config, scripted):
    scripted.answer = staticmethod(field_answer)
    cfg = load_synth_config(write_config(prompts="v1", families=[{"name": "sts", "examples_per_task": 2}]))
    run_synth(cfg, progress=False)
    assert all("A passage about" in p for p in scripted.calls[2])
    assert _rows(cfg.output_path)[0]["provenance"]["prompts"] == "v1"


def test_duplicates_and_near_duplicates_are_dropped(write_config, scripted):
    def answer(prompt, seed):
        if "It describes" in prompt:  # the negative
            return "Pasta needs a large pot of salted boiling water"
        if prompt.rstrip().endswith("Sentence:"):
            return "how to cook rice in a pot"
        if "Shorter sentence:" in prompt:  # the positive: the same text each time, but for a word now and then
            return "Rice cooks in about twenty minutes in a covered pot on low heat" + (" today" if seed % 2 else "")
        return "Pasta needs a large pot of salted boiling water"

    scripted.answer = staticmethod(answer)
    cfg = load_synth_config(write_config(families=[{"name": "sts", "examples_per_task": 6}]))
    summary = run_synth(cfg, progress=False)
    assert summary.kept == 1
    assert summary.dropped["duplicate"] >= 1 and summary.dropped["near_duplicate"] >= 1
    assert summary.dropped["duplicate"] + summary.dropped["near_duplicate"] == 5


def test_examples_sharing_ngrams_with_exclude_files_are_dropped(write_config, scripted, tmp_path):
    sts = tmp_path / "stsb-dev.tsv"
    sts.write_text("sentence1\tsentence2\tscore\nA woman is slicing an onion on a wooden board.\tx\t4.0\n")
    leaked = "Today a woman is slicing an onion on a wooden board in her kitchen"
    scripted.answer = staticmethod(
        lambda prompt, seed: leaked if "A passage about" in prompt and "Shorter sentence:" in prompt else field_answer(prompt, seed)
    )
    cfg = load_synth_config(write_config(families=[{"name": "sts", "examples_per_task": 3}], exclude=["stsb-dev.tsv"]))
    summary = run_synth(cfg, progress=False)
    assert summary.kept == 0 and summary.dropped["contaminated"] == 3


def test_resume_after_a_kill_appends_without_duplicates_and_matches_an_uninterrupted_run(
    write_config, scripted, tmp_path
):
    scripted.answer = staticmethod(field_answer)
    full = load_synth_config(write_config(output="full/synth.jsonl"))
    run_synth(full, progress=False)
    expected = full.output_path.read_text()

    cfg = load_synth_config(write_config(output="killed/synth.jsonl"))
    scripted.calls, scripted.fail_after = [], 5  # brainstorm + 4 field calls, then the "kill"
    with pytest.raises(KeyboardInterrupt):
        run_synth(cfg, progress=False)
    partial = _rows(cfg.output_path)
    assert 0 < len(partial) < len(_rows(full.output_path))
    with cfg.output_path.open("a") as f:  # a write cut in the middle of a line
        f.write('{"id": "retrieval/0001/000", "query": "half a li')

    scripted.fail_after = None
    summary = run_synth(cfg, progress=False)
    assert cfg.output_path.read_text() == expected
    ids = [r["id"] for r in _rows(cfg.output_path)] + [r["id"] for r in _rows(cfg.sidecar("rejects.jsonl"))]
    assert len(ids) == len(set(ids)) == summary.asked == 10
    assert summary.run_attempts < summary.asked  # finished batches were not generated again


def test_a_changed_config_never_appends_to_an_old_output(write_config, scripted):
    scripted.answer = staticmethod(field_answer)
    run_synth(load_synth_config(write_config()), progress=False)
    scripted.calls = []
    with pytest.raises(SynthError, match="was written with another config"):
        run_synth(load_synth_config(write_config(seed=1)), progress=False)
    assert scripted.calls == []  # refused before generating anything


def test_the_task_list_is_reused_as_edited_by_hand(write_config, scripted):
    scripted.answer = staticmethod(field_answer)
    cfg = load_synth_config(write_config(families=[{"name": "retrieval", "tasks": 2, "examples_per_task": 1}]))
    run_synth(cfg, tasks_only=True, progress=False)
    cfg.tasks_path.write_text('{"family": "retrieval", "task": "Given a bird name, retrieve its song."}\n')
    scripted.calls = []
    run_synth(cfg, progress=False)
    assert not any("List" in p for call in scripted.calls for p in call)  # no second brainstorm
    assert {r["task"] for r in _rows(cfg.output_path)} == {"Given a bird name, retrieve its song."}


def test_a_model_that_never_parses_stops_with_an_error_and_valid_output(write_config, scripted):
    scripted.answer = staticmethod(lambda prompt, seed: "Tasks:\n- Given a dish, retrieve its recipes." if "List" in prompt else "  ")
    cfg = load_synth_config(write_config(filters={"language": None, "max_failures_in_a_row": 4}))
    with pytest.raises(SynthError, match="nothing parseable for 4 attempts in a row"):
        run_synth(cfg, progress=False)
    assert [r["reason"] for r in _rows(cfg.sidecar("rejects.jsonl"))] == ["unparseable"] * 4


def test_a_brainstorm_without_any_task_says_how_to_write_tasks_by_hand(write_config, scripted):
    scripted.answer = staticmethod(lambda prompt, seed: "no")
    cfg = load_synth_config(write_config(filters={"language": None, "max_failures_in_a_row": 8}))
    with pytest.raises(SynthError, match="no usable task in 8 answers.*write tasks by hand"):
        run_synth(cfg, progress=False)


def test_brainstorm_keeps_two_search_tasks_an_answer_and_skips_headings_and_template_copies(write_config, scripted):
    from llm2vec_lite.synth.prompts import PromptSet
    from llm2vec_lite.synth.run import brainstorm_tasks

    def answer(prompt, seed):
        return "\n".join([
            "1. History of Ancient Civilizations",  # a heading, no act of search
            "2. Given <what the user types>, retrieve <what they want to find>.",  # the template's own form
            f"3. Given a plant name {seed}, retrieve care guides for it.",
            f"4. Find nurseries {seed} that sell rare seeds nearby.",
            f"5. Search for pests {seed} that attack tomato leaves.",  # a third one: left for variety
        ])

    scripted.answer = staticmethod(answer)
    cfg = load_synth_config(write_config(generator={"batch_size": 2}))
    family = PromptSet.load(cfg.prompts).families["retrieval"]
    backend = scripted(cfg.generator)
    tasks = brainstorm_tasks(cfg, family, 4, backend)
    assert len(tasks) == 4 and not any("History" in t or "<" in t or "pests" in t for t in tasks)
    assert sum("plant name" in t for t in tasks) == 2  # one per answer


def test_json_format_parses_one_answer_per_example_and_writes_parquet(write_config, scripted):
    pq = pytest.importorskip("pyarrow.parquet")
    scripted.answer = staticmethod(
        lambda prompt, seed: "Tasks:\n- Given a dish, retrieve its recipes.\n- Given a city, retrieve hotel reviews."
        if "List" in prompt
        else "```json\n" + json.dumps({"query": f"q{seed} about food", "positive": f"a good answer {seed} here",
                                       "negative": f"a weak answer {seed} here"})[:-1] + ",}\n```"
    )
    cfg = load_synth_config(write_config(format="json", parquet=True))
    summary = run_synth(cfg, progress=False)
    assert summary.kept == summary.asked == 10
    table = pq.read_table(cfg.output_path.with_suffix(".parquet"))
    assert table.num_rows == 10 and {"instruction", "query", "positive", "negative"} <= set(table.column_names)


def test_a_broken_task_list_names_the_file_and_row(write_config, scripted):
    cfg = load_synth_config(write_config())
    cfg.tasks_path.parent.mkdir(parents=True)
    cfg.tasks_path.write_text('{"family": "retrieval", "task": "Given a dish, retrieve recipes."}\n{"task": 3}\n')
    with pytest.raises(SynthError, match=r"synth.tasks.jsonl: row 2: expected"):
        run_synth(cfg, progress=False)
