"""Local task folders (llm2vec_lite.tasks) and their scoring through MTEB (llm2vec_lite.suite).

The embedders here are deterministic functions of the text, so each expected score follows from
the data: a retrieval model that maps a query and its relevant document to the same vector gets
nDCG@10 = 100, and the suite's nDCG must equal pytrec_eval's on the same ranking.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from llm2vec_lite.errors import DataError
from llm2vec_lite.suite import E5_TEMPLATE, Prompts, TextEmbedder, format_suite_table, run_suite, st_prompts
from llm2vec_lite.tasks import detect_type, discover_suite, load_task, load_tasks

pytest.importorskip("mteb")

TOPICS = ["wing flutter", "library catalog", "compiler parsing", "transistor noise"]


def _tsv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    return path


def _retrieval(folder: Path, qrels: list[tuple[str, str, int]] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    docs = [{"_id": str(i), "title": t, "text": f"a study of {t}"} for i, t in enumerate(TOPICS)]
    queries = [{"_id": f"q{i}", "text": f"what about {t}?"} for i, t in enumerate(TOPICS)]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n", encoding="utf-8")
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n", encoding="utf-8")
    rows = qrels if qrels is not None else [(f"q{i}", str(i), 1) for i in range(len(TOPICS))]
    _tsv(folder / "qrels.tsv", ["query-id", "corpus-id", "score"], [[q, d, str(s)] for q, d, s in rows])
    return folder


def _suite(root: Path) -> Path:
    _retrieval(root / "retrieval" / "toy")
    rows = [[f"{t} item {k}", t.split()[0]] for t in TOPICS for k in range(20)]
    _tsv(root / "classification" / "toy" / "train.tsv", ["text", "label"], rows)
    _tsv(root / "classification" / "toy" / "test.tsv", ["text", "label"], rows[::3])
    _tsv(root / "clustering" / "toy.tsv", ["text", "label"], rows)
    _tsv(root / "sts" / "toy.tsv", ["sentence1", "sentence2", "score"],
         [[f"{a} one", f"{b} two", str(5.0 if a == b else 0.0)] for a in TOPICS for b in TOPICS])
    return root


def _topic_embedder(prefixes: list | None = None) -> TextEmbedder:
    """One-hot on the topic a text mentions (plus a small hash of the text), so topics separate."""

    def embed(texts: list[str], prefix: str | None) -> np.ndarray:
        if prefixes is not None:
            prefixes.append((prefix, len(texts)))
        out = np.zeros((len(texts), len(TOPICS) + 1), np.float32)
        for i, t in enumerate(texts):
            hit = [k for k, topic in enumerate(TOPICS) if topic in t or topic.split()[0] in t]
            out[i, hit[0] if hit else len(TOPICS)] = 1.0
            out[i, len(TOPICS)] += (zlib.crc32(t.encode()) % 7) / 100
        return out

    return TextEmbedder("topics", embed, Prompts(query_template=E5_TEMPLATE, document_prefix="passage: "))


def test_suite_scores_every_type_and_means_type_means(tmp_path):
    tasks = load_tasks(suite=_suite(tmp_path))
    assert [(t.type, t.name) for t in tasks] == [
        ("retrieval", "toy (retrieval)"), ("classification", "toy (classification)"),
        ("clustering", "toy (clustering)"), ("sts", "toy (sts)"),
    ]
    report = run_suite(_topic_embedder(), tasks, n_experiments=2, samples_per_label=4)
    scores = {name: r["score"] for name, r in report["tasks"].items()}
    assert scores["toy (retrieval)"] == pytest.approx(100.0)
    assert scores["toy (classification)"] == pytest.approx(100.0)
    assert scores["toy (clustering)"] == pytest.approx(100.0)
    # STS is Spearman of cosine, as evaluate.py computes it for the STS suite
    from llm2vec_lite.evaluate import spearman

    sts = tasks[3].data
    a, b = (_topic_embedder().embed(sts[c], None) for c in ("sentence1", "sentence2"))
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert scores["toy (sts)"] == pytest.approx(100 * spearman(cos, np.array(sts["score"])), abs=1e-6)
    assert report["mean"] == pytest.approx(np.mean(list(report["type_means"].values())))
    table = format_suite_table(report)
    assert "mean of type means" in table and "nDCG@10" in table and "V-measure" in table


def test_retrieval_ndcg_equals_pytrec_eval_on_the_same_run(tmp_path):
    """The suite's nDCG@10 is MTEB's, and MTEB's is pytrec_eval's on the cosine ranking."""
    pytrec_eval = pytest.importorskip("pytrec_eval")
    qrels = [("q0", "0", 2), ("q0", "1", 1), ("q1", "2", 1), ("q2", "2", 1), ("q2", "3", 3), ("q3", "0", 1)]
    task = load_task(_retrieval(tmp_path / "r", qrels))
    rng = np.random.default_rng(0)
    table: dict[str, np.ndarray] = {}

    def embed(texts, prefix):
        return np.stack([table.setdefault(t, rng.standard_normal(8).astype(np.float32)) for t in texts])

    report = run_suite(TextEmbedder("random", embed, Prompts()), [task])
    docs = {d["id"]: table[(d["title"] + " " + d["text"]).strip()] for d in task.data["corpus"]}
    run = {}
    for q in task.data["queries"]:
        v = table[q["text"]]
        run[q["id"]] = {
            d: float(v @ e / np.linalg.norm(v) / np.linalg.norm(e)) for d, e in docs.items()
        }
    evaluator = pytrec_eval.RelevanceEvaluator(task.data["qrels"], {"ndcg_cut.10"})
    expected = 100 * np.mean([m["ndcg_cut_10"] for m in evaluator.evaluate(run).values()])
    assert report["tasks"]["r"]["score"] == pytest.approx(expected, abs=1e-3)


def test_each_text_is_encoded_once_per_prefix_and_instructions_go_to_the_query_side(tmp_path):
    calls: list = []
    tasks = load_tasks(suite=_suite(tmp_path))
    report = run_suite(_topic_embedder(calls), tasks, n_experiments=3, samples_per_label=4)
    prefixes = {p for p, _ in calls}
    assert "passage: " in prefixes  # retrieval documents
    assert f"Instruct: {tasks[0].instruction}\nQuery: " in prefixes  # retrieval queries
    # the clustering and classification files share texts but not instructions; within one
    # (prefix) no text is encoded twice
    seen: dict = {}
    total = sum(n for _, n in calls)
    assert report["texts_encoded"] == total
    for p, n in calls:
        seen[p] = seen.get(p, 0) + n
    classification_rows = 80
    assert seen[f"Instruct: {tasks[1].instruction}\nQuery: "] <= classification_rows


def test_two_label_classification_with_label_names(tmp_path):
    """Label names (SST-2's negative/positive) work with MTEB's binary metrics."""
    rows = [[f"{t} item {k}", "positive" if i % 2 else "negative"] for i, t in enumerate(TOPICS) for k in range(10)]
    _tsv(tmp_path / "c" / "train.tsv", ["text", "label"], rows)
    _tsv(tmp_path / "c" / "test.tsv", ["text", "label"], rows[::2])
    report = run_suite(_topic_embedder(), [load_task(tmp_path / "c")], n_experiments=2, samples_per_label=8)
    assert report["tasks"]["c"]["score"] == pytest.approx(100.0)


def test_sentence_transformers_prompts_map_to_types():
    prompts = st_prompts({"query": "task: search result | query: ", "document": "title: none | text: ",
                          "Clustering": "task: clustering | query: ", "STS": "task: sentence similarity | query: "})
    assert prompts.by_type == {
        "retrieval.query": "task: search result | query: ",
        "retrieval.document": "title: none | text: ",
        "clustering": "task: clustering | query: ",
        "sts": "task: sentence similarity | query: ",
    }
    assert st_prompts({}).by_type is None


# -- bad input: one line naming the file (and line), before any model loads ----------------------


def test_unknown_folder_shape(tmp_path):
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"odd: not a task folder"):
        detect_type(tmp_path / "odd")


def test_qrels_naming_a_missing_document_or_query(tmp_path):
    with pytest.raises(DataError, match=r"qrels.tsv:3: corpus-id '99' is not in corpus.jsonl"):
        load_task(_retrieval(tmp_path / "a", [("q0", "0", 1), ("q1", "99", 1)]))
    with pytest.raises(DataError, match=r"qrels.tsv:2: query-id 'q9' is not in queries.jsonl"):
        load_task(_retrieval(tmp_path / "b", [("q9", "0", 1)]))


def test_empty_corpus(tmp_path):
    folder = _retrieval(tmp_path / "r")
    (folder / "corpus.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(DataError, match=r"corpus.jsonl: empty"):
        load_task(folder)


def test_classification_with_one_label(tmp_path):
    folder = tmp_path / "c"
    _tsv(folder / "train.tsv", ["text", "label"], [["a", "x"], ["b", "x"]])
    _tsv(folder / "test.tsv", ["text", "label"], [["c", "x"], ["d", "y"]])
    with pytest.raises(DataError, match=r"train.tsv: only one label \('x'\)"):
        load_task(folder)


def test_a_suite_without_tasks_and_a_file_of_unknown_shape(tmp_path):
    with pytest.raises(DataError, match="no task found"):
        discover_suite(tmp_path)
    bad = _tsv(tmp_path / "x.tsv", ["query", "answer"], [["a", "b"]])
    with pytest.raises(DataError, match=r"x.tsv:1: a task file needs the columns"):
        detect_type(bad)


def test_dev_suite_is_found_and_checked():
    dev = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dev"
    if not dev.is_dir():
        pytest.skip("no ../shared/data/dev")
    tasks = load_tasks(suite=dev)
    kinds = {t.type for t in tasks}
    assert kinds == {"retrieval", "classification", "clustering"}
    assert {t.name for t in tasks} >= {"cranfield", "cisi", "cacm", "npl", "trec6", "sst2", "agnews"}


def test_eval_scores_a_folder_trained_without_instructions_without_them(tmp_path, capsys):
    import argparse

    from llm2vec_lite.commands.eval import _suite_template

    def template(model: Path, **flags) -> str | None:
        args = argparse.Namespace(model=str(model), no_instructions=flags.get("no_instructions", False))
        return _suite_template(args, flags.get("template"), E5_TEMPLATE)

    plain, instructed, other = tmp_path / "plain", tmp_path / "instructed", tmp_path / "other"
    for folder, settings in ((plain, {"task_instructions": False}), (instructed, {"task_instructions": True}),
                             (other, {"pooling": "mean"})):
        folder.mkdir()
        (folder / "llm2vec_lite.json").write_text(json.dumps(settings), encoding="utf-8")
    assert template(plain) is None
    assert "trained without task instructions" in capsys.readouterr().out
    assert template(plain, template="Q: {instruction} ") == "Q: {instruction} "  # asked for: given
    assert template(instructed) == E5_TEMPLATE
    assert template(other) == E5_TEMPLATE  # a folder from before the field, or another library's
    assert template(tmp_path / "hub-name") == E5_TEMPLATE
    assert template(instructed, no_instructions=True) is None
