"""Recipe schema: validation, error messages, overrides, path resolution, fingerprints, CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from llm2vec_lite.cli import main
from llm2vec_lite.errors import RecipeError
from llm2vec_lite.recipe import (
    MNTPStage,
    Recipe,
    SimCSEStage,
    SupervisedStage,
    field_reference,
    field_reference_markdown,
    list_recipes,
    load_recipe,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "recipes.md"

TINY_SMOKE = """\
name: tiny-smoke
base_model: ./tiny-llama
max_length: 64
pooling: mean
seed: 0
output_dir: ./out
lora: {r: 8, alpha: 16, dropout: 0.0, target_modules: all-linear}
stages:
  - kind: mntp
    data: {path: ./text.txt}
    steps: 4
    batch_size: 4
    learning_rate: 1.0e-4
    mask_probability: 0.2
  - kind: simcse
    data: {path: ./sentences.txt}
    steps: 4
    batch_size: 4
    learning_rate: 1.0e-4
    dropout: 0.1
    temperature: 0.05
  - kind: supervised
    data: {path: ./triplets.tsv}
    steps: 4
    batch_size: 4
    learning_rate: 1.0e-4
    temperature: 0.05
"""


@pytest.fixture
def project(tmp_path) -> Path:
    """A folder with the tiny-smoke recipe, its data files and a (config-only) tiny model folder."""
    (tmp_path / "tiny-llama").mkdir()
    (tmp_path / "tiny-llama" / "config.json").write_text('{"model_type": "llama"}')
    (tmp_path / "text.txt").write_text("one line\nanother line\n")
    (tmp_path / "sentences.txt").write_text("a sentence\nanother sentence\n")
    (tmp_path / "triplets.tsv").write_text("anchor\tpositive\tnegative\na\tb\tc\n")
    (tmp_path / "recipe.yaml").write_text(TINY_SMOKE)
    return tmp_path


def _variant(project: Path, text: str, name: str = "variant.yaml") -> Path:
    path = project / name
    path.write_text(text)
    return path


def _errors(path, overrides=()) -> str:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides)
    return str(info.value)


# -- the contract recipe ----------------------------------------------------------------------


def test_tiny_smoke_recipe_validates(project):
    recipe = load_recipe(project / "recipe.yaml")
    assert [type(s) for s in recipe.stages] == [MNTPStage, SimCSEStage, SupervisedStage]
    assert recipe.lora.r == 8 and recipe.lora.target_modules == "all-linear"
    assert recipe.stages[0].mask_probability == 0.2 and recipe.stages[0].mask_token == "blank"
    assert recipe.stages[2].columns() == ["anchor", "positive", "negative"]
    assert recipe.source_path == (project / "recipe.yaml").resolve()


def test_relative_paths_resolve_against_the_recipe_folder(project, monkeypatch, tmp_path_factory):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    recipe = load_recipe(project / "recipe.yaml")
    root = project.resolve()
    assert recipe.base_model == str(root / "tiny-llama")
    assert recipe.stages[0].data.path == str(root / "text.txt")
    assert recipe.stages[2].data.path == str(root / "triplets.tsv")
    assert recipe.output_dir == str(root / "out")
    assert recipe.stage_dir(0) == root / "out" / "01-mntp"
    assert recipe.stage_dir(2) == root / "out" / "03-supervised"


def test_hub_base_model_is_left_alone(project):
    recipe = load_recipe(project / "recipe.yaml", ["base_model=meta-llama/Meta-Llama-3-8B-Instruct"])
    assert recipe.base_model == "meta-llama/Meta-Llama-3-8B-Instruct"


def test_yaml_roundtrip_gives_an_equal_recipe(project):
    recipe = load_recipe(project / "recipe.yaml", ["stages.0.max_grad_norm=null"])
    again = _variant(project, recipe.to_yaml(), "again.yaml")
    reloaded = load_recipe(again)
    assert reloaded.to_dict() == recipe.to_dict()
    assert reloaded.stages[0].max_grad_norm is None
    assert reloaded.fingerprint == recipe.fingerprint


def test_stage_helpers_merge_overrides(project):
    recipe = load_recipe(
        project / "recipe.yaml", ["stages.1.lora={r: 4}", "stages.1.max_length=16", "stages.2.seed=9"]
    )
    assert recipe.lora_for(1).r == 4 and recipe.lora_for(1).alpha == 16
    assert recipe.lora_for(0).r == 8
    assert recipe.max_length_for(1) == 16 and recipe.max_length_for(0) == 64
    assert recipe.seed_for(2) == 9 and recipe.seed_for(0) == 0


def test_data_shorthands_and_lists(project):
    recipe = load_recipe(
        project / "recipe.yaml",
        ["stages.2.data=[./triplets.tsv, 'hub:org/e5', {hub: org/nli, name: triplet}]"],
    )
    sources = recipe.stages[2].sources()
    assert sources[0].path == str(project.resolve() / "triplets.tsv")
    assert (sources[1].hub, sources[2].hub, sources[2].name) == ("org/e5", "org/nli", "triplet")


# -- errors -----------------------------------------------------------------------------------


def test_recipe_error_names_file_and_field(project):
    path = _variant(
        project,
        TINY_SMOKE.replace(
            "temperature: 0.05\n  - kind: supervised", "temperature: -0.02\n  - kind: supervised"
        ),
    )
    message = _errors(path)
    assert re.search(r"variant\.yaml: stages\[1\]\.temperature = -0\.02: must be > 0", message)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("stages.0.mask_probability=1.5", r"stages\[0\]\.mask_probability = 1\.5: must be < 1"),
        ("stages.1.dropout=-0.1", r"stages\[1\]\.dropout = -0\.1: must be >= 0"),
        ("stages.0.steps=0", r"stages\[0\]\.steps = 0: must be > 0"),
        ("stages.0.steps=many", r"stages\[0\]\.steps = 'many': must be a whole number"),
        ("pooling=max", r"pooling = 'max': must be one of 'mean'"),
        (
            "stages.2.kind=supervize",
            r"stages\[2\]\.kind = 'supervize': must be one of mntp, simcse, supervised \(did you mean 'supervised'\?\)",
        ),
        ("lora.target_modules=[]", r"lora\.target_modules = \[\]: must name at least one module"),
        ("stages.0.data={path: ./text.txt, hub: org/x}", r"stages\[0\]\.data: give exactly one of 'path'"),
        ("stages.0.data=./text.weird", r"cannot infer the format of './text.weird'"),
        (
            "stages.2.data.columns=[q]",
            r"stages\[2\]: data.columns = \['q'\]: supervised needs 2 columns \(anchor, positive\) or 3",
        ),
        ("stages=[]", r"stages = \[\]: must have at least 1 item"),
        ("stages.0.schedule_steps=3", r"stages\[0\]\.schedule_steps = 3: must be >= steps \(4\)"),
        (
            "stages.1.data={path: ./sentences.txt, query_instruction: 'Q: '}",
            r"stages\[1\]: data.query_instruction: only supervised stages use instructions",
        ),
        (
            "stages.2.data={path: ./triplets.tsv, instruction_template: 'Q: '}",
            r"stages\[2\]\.data: instruction_template applies to instruction_column cells",
        ),
        (
            "stages.0.data={path: ./text.txt, instruction_column: task}",
            r"instruction_column needs a table",
        ),
        ("stages.1.data=5", r"stages\[1\]\.data = 5: must be a mapping"),
    ],
)
def test_each_error_kind_names_file_and_field(project, override, expected):
    message = _errors(project / "recipe.yaml", [override])
    assert "recipe.yaml: " in message
    assert re.search(expected, message), message


def test_missing_required_field_is_named(project):
    path = _variant(
        project,
        TINY_SMOKE.replace(
            "    steps: 4\n    batch_size: 4\n    learning_rate: 1.0e-4\n    mask_probability",
            "    batch_size: 4\n    learning_rate: 1.0e-4\n    mask_probability",
        ),
    )
    assert re.search(r"variant\.yaml: stages\[0\]\.steps: required field is missing", _errors(path))


def test_unknown_keys_are_errors_with_suggestions(project):
    message = _errors(
        project / "recipe.yaml", ["stages.0.lr=0.1", "lora.rnak=4", "pooing=mean", "stages.1.data.pth=x.txt"]
    )
    assert "stages[0].lr = 0.1: unknown key (did you mean 'learning_rate'?)" in message
    assert "lora.rnak = 4: unknown key (did you mean 'rank'" not in message
    assert re.search(r"lora\.rnak = 4: unknown key \((did you mean 'r'|allowed: r, alpha)", message)
    assert "pooing = 'mean': unknown key (did you mean 'pooling'?)" in message
    assert "stages[1].data.pth = 'x.txt': unknown key (did you mean 'path'?)" in message


def test_unknown_key_far_from_any_field_lists_the_allowed_ones(project):
    message = _errors(project / "recipe.yaml", ["lora.zzz=1"])
    assert "lora.zzz = 1: unknown key (allowed: r, alpha, dropout, target_modules)" in message


def test_all_problems_are_reported_together(project):
    message = _errors(
        project / "recipe.yaml",
        ["stages.0.steps=-1", "stages.1.temperature=0", "base_model=./missing", "seeed=1"],
    )
    assert "4 problems" in message
    for needle in ("stages[0].steps", "stages[1].temperature", "base_model = './missing'", "seeed"):
        assert needle in message
    assert all("recipe.yaml: " in line for line in message.splitlines())


def test_missing_local_data_is_an_error_at_load_time(project):
    (project / "sentences.txt").unlink()
    message = _errors(project / "recipe.yaml")
    assert re.search(r"recipe\.yaml: stages\[1\]\.data\.path = './sentences\.txt': file not found", message)
    assert (
        load_recipe(project / "recipe.yaml", check_paths=False).stages[1].data.path.endswith("sentences.txt")
    )


def test_missing_hub_data_is_fine_at_validation(project):
    recipe = load_recipe(project / "recipe.yaml", ["stages.2.data={hub: no-such-org/no-such-data}"])
    assert recipe.stages[2].data.hub == "no-such-org/no-such-data"


def test_bad_yaml_and_non_mapping_are_reported(project):
    assert "not valid YAML" in _errors(_variant(project, "name: [unclosed\n"))
    assert "must be a mapping" in _errors(_variant(project, "- a\n- b\n", "list.yaml"))


def test_unknown_recipe_name_points_to_listing():
    with pytest.raises(RecipeError, match=r"Unknown recipe 'no-such-recipe'.*recipe ls"):
        load_recipe("no-such-recipe")


# -- overrides -----------------------------------------------------------------------------------


def test_overrides_set_nested_values_with_yaml_types(project):
    recipe = load_recipe(
        project / "recipe.yaml",
        ["stages.0.steps=10", "lora.r=4", "stages[1].temperature=0.1", "stages.2.hard_negatives=false",
         "stages.2.query_instruction=Retrieve a similar sentence: ", "description=made by a test"],
    )  # fmt: skip
    assert recipe.stages[0].steps == 10 and recipe.lora.r == 4
    assert recipe.stages[1].temperature == 0.1
    assert recipe.stages[2].hard_negatives is False and recipe.stages[2].columns() == ["anchor", "positive"]
    assert recipe.stages[2].query_instruction == "Retrieve a similar sentence: "  # not a YAML mapping
    assert recipe.description == "made by a test"


def test_malformed_overrides_are_errors(project):
    message = _errors(
        project / "recipe.yaml", ["stages.0.steps", "stages.7.steps=1", "stages.x.steps=1", "=3"]
    )
    assert "expected KEY=VALUE" in message
    assert "index 7 is out of range" in message
    assert "stages is a list; use a number" in message
    assert "malformed key" in message


# -- fingerprints -------------------------------------------------------------------------------


def test_fingerprint_ignores_key_order_comments_and_spelled_out_defaults(project):
    base = load_recipe(project / "recipe.yaml").fingerprint
    data = yaml.safe_load(TINY_SMOKE)
    reordered = {k: data[k] for k in reversed(list(data))}
    reordered["stages"] = [{k: s[k] for k in reversed(list(s))} for s in data["stages"]]
    text = "# a comment\n" + yaml.safe_dump(reordered, sort_keys=False).replace(
        "seed: 0", "seed: 0  # why not"
    )
    text += "window: full\ndtype: float32\n"  # defaults written out
    assert load_recipe(_variant(project, text)).fingerprint == base


def test_fingerprint_changes_with_learning_rate_but_not_with_name_or_output_dir(project):
    path = project / "recipe.yaml"
    base = load_recipe(path).fingerprint
    assert len(base) == 16 and int(base, 16) >= 0
    assert load_recipe(path, ["stages.1.learning_rate=2e-4"]).fingerprint != base
    assert load_recipe(path, ["lora.r=16"]).fingerprint != base
    assert load_recipe(path, ["stages.0.data={path: ./sentences.txt}"]).fingerprint != base
    same = [
        "name=renamed",
        "output_dir=./elsewhere",
        "description=hello",
        "stages.0.log_every=5",
        "stages.0.checkpoint_every=2",
    ]
    assert load_recipe(path, same).fingerprint == base


def test_fingerprint_survives_moving_the_project(project, tmp_path_factory):
    import shutil

    moved = tmp_path_factory.mktemp("moved") / "proj"
    shutil.copytree(project, moved)
    assert load_recipe(moved / "recipe.yaml").fingerprint == load_recipe(project / "recipe.yaml").fingerprint


def test_fingerprint_of_a_model_under_home_ignores_the_checkouts_depth(project, tmp_path_factory, monkeypatch):
    """A base model outside the project (a GGUF assembled into ~/.cache) counts as ~/..., so two
    checkouts at different depths share their stages' fingerprints."""
    import shutil

    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    (home / ".cache").mkdir()
    (home / ".cache" / "m.gguf").write_bytes(b"GGUF")
    shallow = tmp_path_factory.mktemp("a") / "proj"
    deep = tmp_path_factory.mktemp("b") / "x" / "y" / "proj"
    for where in (shallow, deep):
        shutil.copytree(project, where)
    over = ["base_model=~/.cache/m.gguf"]
    one, two = load_recipe(shallow / "recipe.yaml", over), load_recipe(deep / "recipe.yaml", over)
    assert one._hashable()["base_model"] == "~/.cache/m.gguf"
    assert one.fingerprint == two.fingerprint
    assert one._hashable()["stages"][0]["data"] == two._hashable()["stages"][0]["data"]  # inside: relative


def test_stage_fingerprint_depends_only_on_earlier_stages(project):
    path = project / "recipe.yaml"
    a = load_recipe(path)
    b = load_recipe(path, ["stages.2.learning_rate=5e-4"])
    assert [a.stage_fingerprint(i) for i in (0, 1)] == [b.stage_fingerprint(i) for i in (0, 1)]
    assert a.stage_fingerprint(2) != b.stage_fingerprint(2)
    assert len({a.stage_fingerprint(i) for i in range(3)}) == 3
    c = load_recipe(path, ["max_length=32"])  # a global changes every stage
    assert all(a.stage_fingerprint(i) != c.stage_fingerprint(i) for i in range(3))
    with pytest.raises(IndexError):
        a.stage_fingerprint(3)


# -- schema reference and docs -----------------------------------------------------------------


def test_every_field_has_a_description():
    rows = field_reference()
    assert rows
    assert all(desc for (_, _, _, _, desc) in rows), [r for r in rows if not r[4]]
    for model in (Recipe, MNTPStage, SimCSEStage, SupervisedStage):
        assert all(f.description for f in model.model_fields.values())


def test_docs_field_reference_is_in_sync_with_the_schema():
    if not DOCS.is_file():
        pytest.skip("docs/recipes.md not present")
    text = DOCS.read_text(encoding="utf-8")
    start, end = "<!-- fields:start -->", "<!-- fields:end -->"
    assert start in text and end in text
    section = text.split(start, 1)[1].split(end, 1)[0].strip()
    assert section == field_reference_markdown().strip(), (
        "docs/recipes.md is out of date; regenerate with `llm2vec-lite recipe fields --markdown`"
    )


# -- CLI ----------------------------------------------------------------------------------------


def test_cli_check_prints_summary(tmp_path, capsys):
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "recipes"))
    from tiny_project import make_tiny_project

    file = make_tiny_project(tmp_path)  # a real tiny model: `recipe check` reads its config and tokenizer
    assert main(["recipe", "check", str(file), "stages.0.steps=7"]) == 0
    out = capsys.readouterr().out
    recipe = load_recipe(file, ["stages.0.steps=7"])
    assert recipe.fingerprint in out
    assert "mntp" in out and "simcse" in out and "supervised" in out
    assert re.search(r"\b7\b", out)


def test_cli_check_fails_with_all_errors(project, capsys):
    code = main(["recipe", "check", str(project / "recipe.yaml"), "stages.0.steps=-1", "pooling=max"])
    err = capsys.readouterr().err
    assert code == 1
    assert "stages[0].steps = -1: must be > 0" in err and "pooling = 'max'" in err


def test_cli_fields_prints_every_field(capsys):
    assert main(["recipe", "fields"]) == 0
    out = capsys.readouterr().out
    for _, name, _, _, _ in field_reference():
        assert name in out


def test_cli_cp_copies_and_refuses_to_overwrite(tmp_path, capsys):
    names = list_recipes()
    if not names:
        pytest.skip("no shipped recipes")
    dest = tmp_path / "mine.yaml"
    assert main(["recipe", "cp", names[0], str(dest)]) == 0
    assert dest.read_text() == (Path(load_recipe(names[0], check_paths=False).source_path)).read_text()
    assert main(["recipe", "cp", names[0], str(dest)]) == 1
    assert "exists" in capsys.readouterr().err
    into_dir = tmp_path / "folder"
    into_dir.mkdir()
    assert main(["recipe", "cp", names[0], str(into_dir)]) == 0
    assert (into_dir / f"{names[0]}.yaml").is_file()


def test_cli_ls_and_show(capsys):
    names = list_recipes()
    if not names:
        pytest.skip("no shipped recipes")
    assert main(["recipe", "ls"]) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in names)
    assert main(["recipe", "show", names[0]]) == 0
    assert "stages:" in capsys.readouterr().out
    assert main(["recipe", "show", "no-such-recipe"]) == 1


def test_init_from_an_earlier_stage_resolves_to_its_folder_and_fingerprint_follows_lineage(project):
    path = project / "recipe.yaml"
    a = load_recipe(path, ["stages.2.init_from=stages[0]"])
    assert a.stages[2].init_from == str(a.stage_dir(0))
    assert [a.parent_stage(i) for i in range(3)] == [None, 0, 0]
    b = load_recipe(path, ["stages.2.init_from=stages[0]", "stages.1.learning_rate=9e-4"])
    assert a.stage_fingerprint(2) == b.stage_fingerprint(2)  # SimCSE is not in supervised's lineage
    assert a.stage_fingerprint(1) != b.stage_fingerprint(1)
    c = load_recipe(path, ["stages.2.init_from=stages[0]", "output_dir=./other"])
    assert c.stage_fingerprint(2) == a.stage_fingerprint(2)
    assert "must name an earlier stage" in _errors(path, ["stages.1.init_from=stages[1]"])


def test_init_from_a_missing_folder_is_an_error(project):
    message = _errors(project / "recipe.yaml", ["stages.1.init_from=./nowhere"])
    assert re.search(r"stages\[1\]\.init_from = './nowhere': folder not found", message)


def test_data_files_needs_a_hub_source(project):
    message = _errors(project / "recipe.yaml", ["stages.0.data={path: ./text.txt, data_files: x.csv}"])
    assert "data_files only applies to hub sources" in message


def test_new_unset_fields_keep_old_fingerprints_and_set_ones_change_them(project):
    """schedule_steps, revision and source instructions join the hash only when set."""
    path = project / "recipe.yaml"
    base = load_recipe(path)
    spelled = load_recipe(
        path, ["revision=null", "stages.2.data={path: ./triplets.tsv, query_instruction: null}"]
    )
    assert spelled.fingerprint == base.fingerprint
    for override in (
        "stages.2.schedule_steps=40",
        "revision=refs/pr/3",
        "stages.2.data={path: ./triplets.tsv, query_instruction: 'Q: '}",
        "stages.2.schedule=constant",
    ):
        assert load_recipe(path, [override]).stage_fingerprint(2) != base.stage_fingerprint(2), override
    assert load_recipe(path, ["stages.2.schedule_steps=40"]).stage_fingerprint(1) == base.stage_fingerprint(1)
    weighted = ["stages.2.data=[{path: ./triplets.tsv, weight: 1}, {path: ./triplets.tsv, weight: 2}]"]
    one_source = load_recipe(path, [*weighted, "stages.2.single_source_batches=true"])
    assert one_source.stage_fingerprint(2) != load_recipe(path, weighted).stage_fingerprint(2)
    assert load_recipe(path, [*weighted, "stages.2.single_source_batches=false"]).fingerprint == load_recipe(
        path, weighted
    ).fingerprint
    # 'constant' now warms up: with warmup its weights (and fingerprint) differ from the old meaning
    constant = load_recipe(path, ["stages.2.schedule=constant", "stages.2.warmup_steps=2"])
    assert constant._hashable()["stages"][2]["schedule"] == "constant_with_warmup"


# -- supervised source shapes: weights, nli, groups, where ----------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ["stages.2.data=[{path: ./triplets.tsv, weight: 2}, {path: ./triplets.tsv}]"],
            r"stages\[2\]: data\[1\]: no weight, while other sources of this stage have one; give every source",
        ),
        (
            ["stages.2.single_source_batches=true"],
            r"stages\[2\]: single_source_batches: true needs a weight on every data source",
        ),
        (["stages.2.data={path: ./triplets.tsv, weight: 0}"], r"stages\[2\]\.data\.weight = 0: must be > 0"),
        (["stages.2.data={path: ./triplets.tsv, weight: -1.5}"], r"data\.weight = -1.5: must be > 0"),
        (
            ["stages.2.data={path: ./triplets.tsv, nli: {}, group_columns: [a, b]}"],
            r"stages\[2\]\.data: give one of nli .*, group_columns .* or crops .*, not nli and group_columns",
        ),
        (
            ["stages.2.data={path: ./triplets.tsv, group_columns: [a, b], columns: [a, b]}"],
            r"group_columns replaces columns",
        ),
        (
            ["stages.2.data={path: ./triplets.tsv, group_columns: [a, a]}"],
            r"name at least two different columns",
        ),
        (
            ["stages.2.data={path: ./triplets.tsv, nli: {}, columns: [a, b, c]}"],
            r"with nli, columns names the premise and hypothesis columns \(two\)",
        ),
        (
            ["stages.2.data={path: ./triplets.tsv, nli: {positive: x, negative: x}}"],
            r"positive and negative are both 'x'",
        ),
        (["stages.2.data={path: ./triplets.tsv, nli: {labels: x}}"], r"data\.nli\.labels = 'x': unknown key"),
        (
            ["stages.1.data={path: ./sentences.txt, weight: 1}"],
            r"stages\[1\]: data\.weight: only supervised stages use weight \(simcse trains on plain texts\)",
        ),
        (["stages.0.data={path: ./text.txt, where: {split: train}}"], r"where needs a table"),
        (["stages.2.data={path: ./triplets.tsv, where: {}}"], r"where must map at least one column"),
    ],
)
def test_source_shape_errors_name_the_field(project, overrides, expected):
    message = _errors(project / "recipe.yaml", overrides)
    assert re.search(expected, message), message


def test_source_shapes_validate_and_numeric_labels_read_as_text(project):
    recipe = load_recipe(
        project / "recipe.yaml",
        [
            "stages.2.data=[{path: ./triplets.tsv, weight: 1}, {path: ./triplets.tsv, nli: {positive: 0, negative: null},"
            " where: {split: [1, train]}, weight: 0.5}, {path: ./triplets.tsv, group_columns: [a, b], weight: 2}]"
        ],
    )
    nli_source = recipe.stages[2].sources()[1]
    assert nli_source.nli.positive == "0" and nli_source.nli.negative is None
    assert nli_source.where == {"split": ["1", "train"]}
    assert [s.weight for s in recipe.stages[2].sources()] == [1, 0.5, 2]


def test_new_source_keys_keep_old_fingerprints_until_set(project):
    path = project / "recipe.yaml"
    base = load_recipe(path)
    spelled = load_recipe(
        path,
        ["stages.2.data={path: ./triplets.tsv, weight: null, nli: null, where: null, group_columns: null}"],
    )
    assert spelled.fingerprint == base.fingerprint
    for data in (
        "{path: ./triplets.tsv, weight: 2}",
        "{path: ./triplets.tsv, nli: {}}",
        "{path: ./triplets.tsv, where: {a: b}}",
    ):
        assert load_recipe(path, [f"stages.2.data={data}"]).fingerprint != base.fingerprint, data


# -- projection refit defaults ------------------------------------------------------------------


def test_projection_refit_default_depends_on_the_stage_kind(project):
    """null refit resolves in the recipe: true after simcse, false after supervised; explicit wins."""
    overrides = ["stages.1.projection={mode: whiten}", "stages.2.projection={mode: whiten}"]
    recipe = load_recipe(project / "recipe.yaml", overrides)
    assert recipe.stages[1].projection.refit is True
    assert recipe.stages[2].projection.refit is False
    explicit = load_recipe(project / "recipe.yaml", [*overrides, "stages.1.projection.refit=false",
                                                    "stages.2.projection.refit=true"])
    assert (explicit.stages[1].projection.refit, explicit.stages[2].projection.refit) == (False, True)
    # spelling the default out does not change the fingerprint
    spelled = load_recipe(project / "recipe.yaml", [*overrides, "stages.1.projection.refit=true",
                                                   "stages.2.projection.refit=false"])
    assert spelled.fingerprint == recipe.fingerprint != explicit.fingerprint
