"""Hard-negative mining: the chunked top-k, the positive-aware rule, spreading negatives over rows,
and ``llm2vec-lite mine`` end to end with a tiny random encoder."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import torch

from llm2vec_lite.cli import main
from llm2vec_lite.mining import (
    MiningSettings,
    PassageTable,
    assign_negatives,
    best_positive_scores,
    mine,
    pick_negatives,
    read_corpus,
    read_source,
    top_k,
)


def test_top_k_in_chunks_equals_the_full_matrix():
    torch.manual_seed(0)
    q, p = torch.randn(37, 8), torch.randn(53, 8)
    full = (q @ p.T).topk(5, dim=1)
    scores, idx = top_k(q, p, 5, chunk_size=4)  # 10 chunks, the last one short
    torch.testing.assert_close(scores, full.values)
    assert torch.equal(idx, full.indices)
    assert top_k(q, p[:3], 30)[1].shape == (37, 3)  # k above the pool: every passage, once


def test_best_positive_score_is_the_max_over_each_querys_positives():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[0.5, 0.1], [0.9, 0.0], [0.2, 0.7]])
    best = best_positive_scores(q, p, [[0, 1], [0, 2]])
    torch.testing.assert_close(best, torch.tensor([0.9, 0.7]))


def _picks_from_matrix(matrix: torch.Tensor, positives: list[set[int]], **kw):
    """Run pick_negatives on a full score matrix (k = every passage), as ``mine`` does on top-k."""
    scores, idx = matrix.sort(dim=1, descending=True)
    best = torch.stack([matrix[i, sorted(pos)].max() for i, pos in enumerate(positives)])
    return pick_negatives(scores, idx, positives, best, **kw)


def test_false_negatives_and_positives_are_never_picked():
    # query 0: positive 0 scores 0.80; passage 1 (0.79 > 0.95 * 0.80 = 0.76) is a likely false
    # negative, passage 2 (0.75) and 3 are kept, best first.
    # query 1: two positives (3: 0.5, 4: 0.9); threshold 0.855 -> passage 0 (0.95) dropped.
    matrix = torch.tensor([
        [0.80, 0.79, 0.75, 0.30, 0.10],
        [0.95, 0.20, 0.40, 0.50, 0.90],
    ])
    picks = _picks_from_matrix(matrix, [{0}, {3, 4}])
    assert picks.negatives == [[2, 3, 4], [2, 1]]
    assert picks.false_negatives == 2 and picks.positives_in_top_k == 3
    # fraction 1: only passages above the positive itself are dropped
    assert _picks_from_matrix(matrix, [{0}, {3, 4}], max_score_fraction=1.0).negatives == [[1, 2, 3, 4], [2, 1]]
    # skip_top counts ranks among non-positives (the false negatives 1 and 0 are skipped first)
    picks = _picks_from_matrix(matrix, [{0}, {3, 4}], skip_top=1)
    assert picks.negatives == [[2, 3, 4], [2, 1]] and picks.false_negatives == 0
    assert _picks_from_matrix(matrix, [{0}, {3, 4}], skip_top=2).negatives == [[3, 4], [1]]


def test_a_negative_positive_score_still_drops_passages_above_it():
    """With a weak model the positive's cosine can be < 0; a passage scoring above it is never kept."""
    matrix = torch.tensor([[-0.20, -0.195, -0.30]])
    assert _picks_from_matrix(matrix, [{0}]).negatives == [[2]]


def test_rows_of_one_query_get_different_negatives():
    rows = [("q1", "a"), ("q2", "b"), ("q1", "c"), ("q1", "d"), ("q3", "e")]
    cands = {"q1": ["n1", "n2"], "q2": ["m1", "m2", "m3"]}
    out = assign_negatives(rows, cands)
    assert [(r.query, r.positive, r.negative) for r in out] == [
        ("q1", "a", "n1"), ("q2", "b", "m1"), ("q1", "c", "n2"), ("q1", "d", "n1"), ("q3", "e", None)
    ]
    two = assign_negatives(rows, cands, per_row=2)
    assert [r.negative for r in two if r.positive == "b"] == ["m1", "m2"]
    assert [r.negative for r in two if r.query == "q1"] == ["n1", "n2", "n1", "n2", "n1", "n2"]
    assert [r.negative for r in assign_negatives([("q", "p")], {"q": ["x"]}, per_row=3)] == ["x"]  # no repeats


# ------------------------------------------------------------------------------ end to end
QUERIES = {
    "a cat sits on the mat": ["the cat sits on a mat.", "a cat is sitting on the mat."],
    "the dog runs past the river": ["a dog runs along the river."],
    "two children play with a red ball": ["children play with a ball."],
    "an old horse eats green grass": ["the horse eats grass."],
    "my friend walks to the small house": ["a friend walks to a house."],
    "three birds sleep near the tree": ["birds sleep in a big tree."],
}
NEGATIVES = ["a man looks at the table.", "the woman jumps over a red ball."]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    sys.path.insert(0, str(Path(__file__).parent / "recipes"))
    from tiny_project import make_tiny_encoder_project

    root = tmp_path_factory.mktemp("mine")
    make_tiny_encoder_project(root)
    lines = ["query\tpositive\tnegative"]
    for i, (q, positives) in enumerate(QUERIES.items()):
        lines += [f"{q}\t{p}\t{NEGATIVES[i % 2] if i < 2 else ''}" for p in positives]
    lines.append("\tan orphan passage.\t")  # no query: left out of the rows, still a passage
    (root / "source.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    extra = ["query\tpositive", "x\tthe grass is green near the river.", "y\ta small house with a table."]
    (root / "extra.tsv").write_text("\n".join(extra) + "\n", encoding="utf-8")
    return root


def _read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def test_read_source_keeps_rows_and_every_passage(project):
    table = read_source(project / "source.tsv")
    assert len(table.rows) == 7 and table.skipped == 1
    assert set(NEGATIVES) <= set(table.passages) and "an orphan passage." in table.passages
    assert len(table.passages) == len(set(table.passages)) == 7 + 2 + 1
    assert read_corpus(project / "extra.tsv") == ["the grass is green near the river.", "a small house with a table."]


def test_mine_command_writes_a_supervised_source(project):
    from llm2vec_lite.data import read_rows
    from llm2vec_lite.encoder import Encoder
    from llm2vec_lite.recipe import DataSource

    out = project / "mined" / "source.tsv"
    argv = ["mine", str(project / "enc"), "--data", str(project / "source.tsv"), "--output", str(out),
            "--extra-corpus", str(project / "extra.tsv"), "--top-k", "8"]
    assert main(argv) == 0
    rows = _read_tsv(out)
    assert list(rows[0]) == ["query", "positive", "negative"]
    source = read_source(project / "source.tsv")
    assert [(r["query"], r["positive"]) for r in rows] == source.rows  # one line per input row, in order
    pool = set(source.passages) | set(read_corpus(project / "extra.tsv"))
    enc = Encoder.from_pretrained(project / "enc")
    mined = [r for r in rows if r["negative"]]
    assert mined, "nothing mined"
    for r in mined:
        positives = QUERIES[r["query"]]
        assert r["negative"] in pool and r["negative"] not in positives
        q, n, *pos = enc.encode([r["query"], r["negative"], *positives], convert_to="torch")
        assert float(q @ n) <= 0.95 * max(float(q @ p) for p in pos) + 1e-4  # the false-negative rule held
    # the rows of the query with two positives got different negatives when it had two candidates
    cat = [r["negative"] for r in rows if r["query"] == "a cat sits on the mat"]
    assert len(cat) == 2 and (cat[0] != cat[1] or not cat[0])
    read = read_rows(DataSource(path=str(out)), ["query", "positive", "negative"], min_columns=2)
    assert read == [(r["query"], r["positive"], r["negative"]) for r in mined]  # a recipe reads it


def test_several_sources_share_one_pool_and_keep_their_own_files(project, tmp_path):
    """One run over two files: a negative may come from the other file's passages, a query's
    positives in either file are never its negative, and each file's rows go to its own output."""
    cat = "a cat sits on the mat"
    (tmp_path / "a.tsv").write_text(f"query\tpositive\n{cat}\tthe cat sits on a mat.\n", encoding="utf-8")
    lines = ["query\tpositive", f"{cat}\ta cat is sitting on the mat."]
    lines += [f"{q}\t{ps[0]}" for q, ps in list(QUERIES.items())[1:]]
    (tmp_path / "b.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "mined"
    argv = ["mine", str(project / "enc"), "--data", str(tmp_path / "a.tsv"), str(tmp_path / "b.tsv"),
            "--output", str(out), "--top-k", "8", "--max-score-fraction", "1.0"]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.tsv", "b.tsv"]
    (row_a,) = _read_tsv(out / "a.tsv")
    b_passages = read_source(tmp_path / "b.tsv").passages
    # a.tsv holds only its positive: the negative comes from b.tsv, and is not the cat's other positive
    assert row_a["negative"] in b_passages and row_a["negative"] != "a cat is sitting on the mat."
    rows_b = _read_tsv(out / "b.tsv")
    assert [(r["query"], r["positive"]) for r in rows_b] == read_source(tmp_path / "b.tsv").rows
    assert all(r["negative"] != "the cat sits on a mat." for r in rows_b if r["query"] == cat)


def test_a_row_without_a_negative_reads_as_a_pair(tmp_path):
    from llm2vec_lite.data import read_rows
    from llm2vec_lite.mining import MinedRow, write_mined
    from llm2vec_lite.recipe import DataSource

    path = write_mined(tmp_path / "m.tsv", [MinedRow("q1", "p1", "n1"), MinedRow("q2", "p2", None)])
    assert path.read_text(encoding="utf-8") == "query\tpositive\tnegative\nq1\tp1\tn1\nq2\tp2\t\n"
    read = read_rows(DataSource(path=str(path), columns=["query", "positive", "negative"]), ["anchor", "positive", "negative"])
    assert read == [("q1", "p1", "n1"), ("q2", "p2")]


def test_more_negatives_per_query_and_instructions(project):
    from llm2vec_lite.encoder import Encoder

    enc = Encoder.from_pretrained(project / "enc")
    source = read_source(project / "source.tsv")
    settings = MiningSettings(top_k=10, max_score_fraction=1.0, negatives_per_query=3,
                              query_instruction="Query: ")
    result = mine(enc, source, [], settings, show_progress=False)
    assert result.queries == 6 and result.passages == 10
    by_row: dict[tuple[str, str], list[str]] = {}
    for r in result.rows:
        by_row.setdefault((r.query, r.positive), []).append(r.negative)
    assert list(by_row) == source.rows
    for (query, _), negatives in by_row.items():
        assert len(negatives) == len(set(negatives)) == 3  # ten passages leave at least 8 candidates
        assert not set(negatives) & set(QUERIES[query])


def test_a_passage_equal_to_a_positive_up_to_case_is_not_a_negative(project):
    """An exact duplicate of the positive with other case or spacing is the positive."""
    from llm2vec_lite.encoder import Encoder

    enc = Encoder.from_pretrained(project / "enc")
    table = PassageTable(project, [("a cat", "The cat sits."), ("a dog", "the dog runs.")],
                         ["The cat sits.", "the dog runs.", "the  CAT sits.", "A Cat"])
    result = mine(enc, table, [], MiningSettings(max_score_fraction=1.0), show_progress=False)
    negatives = {r.query: r.negative for r in result.rows}
    assert negatives["a cat"] == "the dog runs."  # not the positive's twin, not the query's own text


def test_a_text_corpus_gives_its_lines_without_tabs(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("one passage\n\na tab\there\none passage\n", encoding="utf-8")
    assert read_corpus(path) == ["one passage", "a tab here"]
