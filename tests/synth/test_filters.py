"""Parsing, checks, dedupe and decontamination on canned model outputs (a tiny model writes gibberish)."""

from __future__ import annotations

import pytest

from llm2vec_lite.synth.filters import (
    Decontaminator,
    NearDuplicateIndex,
    check_example,
    clean_field,
    has_answer_line,
    is_search_task,
    looks_like_language,
    parse_json_example,
    parse_task_list,
    template_echo_checker,
)

GOOD = {"query": "how to bake bread", "positive": "Mix flour, water and yeast, then bake.", "negative": "Bread prices rose."}


@pytest.mark.parametrize(
    "answer",
    [
        '{"query": "how to bake bread", "positive": "Mix flour.", "negative": "Prices rose."}',
        'Sure! Here is the example:\n```json\n{\n  "query": "how to bake bread",\n  "positive": "Mix flour.",\n  "negative": "Prices rose.",\n}\n```\nHope it helps.',
        "{'query': 'how to bake bread', 'positive': 'Mix flour.', 'negative': 'Prices rose.'}",
        '{"user_query": "how to bake bread", "positive_document": "Mix flour.", "hard_negative_document": "Prices rose."}',
        '{"query": "how to bake bread", "positive": "Mix flour.", "negative": "Prices rose.',  # cut off
        '{"query": "how to bake bread", "positive": "Mix {flour}.", "negative": "Prices \\"rose\\"."}',
    ],
)
def test_json_parser_tolerates_what_small_models_write(answer):
    parsed = parse_json_example(answer)
    assert parsed is not None
    assert parsed["query"] == "how to bake bread"
    assert parsed["positive"].startswith("Mix")
    assert parsed["negative"].startswith("Prices")


@pytest.mark.parametrize(
    "answer", ["I cannot help with that.", '{"query": "only one field"}', "{not json at all}", ""]
)
def test_json_parser_returns_none_without_every_field(answer):
    assert parse_json_example(answer) is None


def test_json_parser_skips_an_incomplete_object_for_a_later_complete_one():
    answer = '{"query": "x"} and then {"query": "q", "positive": "p", "negative": "n"}'
    assert parse_json_example(answer) == {"query": "q", "positive": "p", "negative": "n"}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Query: how long to boil an egg\nTask: next few-shot example", "how long to boil an egg"),
        ('  "how long to boil an egg"  ', "how long to boil an egg"),
        ("Sure, here is a query:\n\n**Query:** how long to boil an egg", "how long to boil an egg"),
        ("\n\nhow long   to boil\tan egg\n", "how long to boil an egg"),
        ("Note: eggs take ten minutes", "Note: eggs take ten minutes"),  # not the template's label: kept
        # a preamble on the answer's own line (SmolLM2-135M-Instruct wrote this one)
        ('Awesome! Here is a sample of a search query: "how long to boil an egg"', "how long to boil an egg"),
        ("Great views: the sea is blue", "Great views: the sea is blue"),  # no "here is": a sentence, kept
        ("   \n  ", ""),
    ],
)
def test_clean_field_keeps_only_the_answer(answer, expected):
    assert clean_field(answer, labels=["query"]) == expected


def test_clean_field_can_keep_several_lines():
    assert clean_field("Passage: one line.\nAnother line.", labels=["passage"], one_line=False) == (
        "one line. Another line."
    )


def test_task_list_strips_bullets_and_skips_non_tasks():
    answer = (
        "Tasks:\n1. Given a question about a disease, retrieve articles on it.\n- Given a dish, retrieve "
        "recipes.\n* Retrieve court rulings that match a legal question\n\nok\n(4) Given a city, retrieve hotel reviews."
    )
    assert parse_task_list(answer) == [
        "Given a question about a disease, retrieve articles on it.",
        "Given a dish, retrieve recipes.",
        "Retrieve court rulings that match a legal question",
        "Given a city, retrieve hotel reviews.",
    ]


def test_task_list_reads_a_json_list():
    assert parse_task_list('["Given a dish, retrieve recipes.", "Given a song, retrieve lyrics."]') == [
        "Given a dish, retrieve recipes.",
        "Given a song, retrieve lyrics.",
    ]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({}, None),
        ({"query": "bread"}, "too_short"),
        ({"positive": "word " * 50}, "too_long"),
        ({"negative": "Цены на хлеб выросли в этом году снова."}, "language"),
        ({"negative": "Mix flour, water and yeast, then bake."}, "degenerate"),
        ({"negative": "A text about $topic here."}, "degenerate"),
        ({"query": ""}, "unparseable"),
        # SmolLM2-135M-Instruct loops at temperature 0.7; the other rules pass such text
        ({"positive": "the village watching the sea, and the sea watching the village, " * 3}, "repetitive"),
        ({"negative": "The bakery on the corner sells bread that people in the town buy every morning."}, None),
        # a sampled length constraint copied into the text
        ({"query": "how to bake bread in 3 to 8 words"}, "degenerate"),
    ],
)
def test_check_example_gives_the_drop_reason(change, reason):
    constraints = {"query_length": "3 to 8 words", "topic": "a kitchen"}
    assert check_example({**GOOD, **change}, min_words=2, max_words=40, language="en", constraints=constraints) == reason


def test_a_scene_named_in_the_text_is_not_a_leak():
    example = {**GOOD, "query": "In a kitchen someone bakes bread"}
    assert check_example(example, min_words=2, max_words=40, language="en", constraints={"topic": "a kitchen"}) is None


def test_language_check_accepts_english_and_rejects_word_salad():
    assert looks_like_language("The cat is sleeping on the warm window sill.", "en")
    assert not looks_like_language("w45 w67 w12 w99 w3 w81 w17 w44", "en")
    assert not looks_like_language("$$$ ### @@@ !!! ((( )))", "en")


def test_near_duplicate_index_catches_copies_and_close_copies_only():
    index = NearDuplicateIndex(threshold=0.8)
    base = "a man is playing a large guitar on the stage in front of a very big crowd of happy people tonight"
    index.add(base)
    assert index.check(base.upper() + " !") == "duplicate"  # normalised: case and punctuation
    assert index.check(base + " again") == "near_duplicate"  # one word more: 3-gram Jaccard ~0.95
    assert index.check("the weather in the mountains was cold and the hikers turned back early") is None
    assert index.check("a man is playing a small violin at home for his quiet old dog this morning") is None


def test_near_duplicate_index_is_the_same_across_instances():
    # Resume rebuilds the index from the output file; its hashing must not depend on the process.
    a, b = NearDuplicateIndex(), NearDuplicateIndex()
    text = "one two three four five six seven eight nine ten"
    assert a._signature({text}) == b._signature({text})


def test_decontaminator_drops_shared_long_ngrams_and_whole_short_sentences():
    dec = Decontaminator(
        ["A woman is slicing an onion on a wooden board in the kitchen.", "A dog runs in the park.", "A man."], n=8
    )
    assert dec.contaminated("Today a woman is slicing an onion on a wooden board while singing.")
    assert dec.contaminated("Look: a dog runs in the park, happily.")  # whole 6-word sentence inside
    assert not dec.contaminated("A man walks to the shop.")  # 'A man.' is too short to protect
    assert not dec.contaminated("A woman is cutting a tomato on a plate.")


def test_decontaminator_reads_every_text_cell_of_a_tsv(tmp_path):
    tsv = tmp_path / "sts.tsv"
    tsv.write_text(
        "sentence1\tsentence2\tscore\nA plane is taking off from the runway.\tAn air plane is taking off.\t5.0\n",
        encoding="utf-8",
    )
    dec = Decontaminator.from_files([tsv], n=8)
    assert dec.contaminated("I saw that an air plane is taking off.")
    assert dec.contaminated("Yesterday a plane is taking off from the runway at noon.")
    assert not dec.contaminated("5.0 stars for this hotel by the runway")


def test_echo_checker_catches_copies_of_the_worked_example_seen_from_smollm2():
    # A template with a worked example, as v1's sts positive template had when SmolLM2-135M-Instruct
    # answered it with the first two texts below (verbatim; docs/synth.md).
    template = (
        "Sentence: A man is cutting bread in the kitchen.\nRewritten: In the kitchen, a man slices a loaf of bread.\n\n"
        "Sentence: $query\nRewrite the sentence with different words so that it has $positive_similarity.\nRewritten:"
    )
    echo = template_echo_checker([template])
    assert echo.contaminated("In the kitchen, a man slices a loaf of bread, just as the beach is always on a lazy Sunday.")
    assert echo.contaminated("In the kitchen, a man cuts a loaf of bread.")  # 'in the kitchen a man': 5 words
    assert not echo.contaminated("In the heart of a bustling city, a child brought a vibrant energy to the stage.")
    assert not echo.contaminated("so that it has the same meaning")  # fragments stop at placeholders


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ("Given a symptom, retrieve articles that explain it.", True),
        ("Find the most popular gardening apps.", True),
        ("Searching for a dish's recipes", True),
        ("History of Ancient Civilizations of Africa", False),
        ("Sports: Baseball, hockey, basketball, soccer", False),
    ],
)
def test_a_brainstormed_line_is_a_task_only_when_it_names_a_search(task, expected):
    assert is_search_task(task) is expected


@pytest.mark.parametrize(
    ("text", "done"),
    [
        ("Sure, here is a passage that answers the query:\n", False),  # only a preamble: go on
        ("Sure, here is a passage:\nRice cooks in twenty", False),
        ("Sure, here is a passage:\nRice cooks in twenty minutes.\n", True),
        ("Rice cooks in twenty minutes.\n", True),
        ("\n\nRice cooks", False),
    ],
)
def test_a_one_line_field_is_finished_by_an_answer_line_not_by_a_preamble(text, done):
    assert has_answer_line(text) is done
