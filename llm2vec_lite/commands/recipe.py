"""``llm2vec-lite recipe``: check, list, show, copy, compare recipes and print the field reference.

Everything here reads the schema in :mod:`llm2vec_lite.recipe`; no training code is imported, so
``recipe check`` is fast and works without torch doing anything.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

_EPILOG = """\
examples:
  llm2vec-lite recipe ls
  llm2vec-lite recipe check llm2vec-sheared-llama-1.3b stages.0.steps=10
  llm2vec-lite recipe check ./mine.yaml lora.r=8
  llm2vec-lite recipe show cft-phi-2
  llm2vec-lite recipe cp cft-phi-2 ./mine.yaml
  llm2vec-lite recipe fields
  llm2vec-lite recipe diff smollm2-135m-cpu smollm2-135m-unsup-cpu
  llm2vec-lite recipe diff my.yaml runs/x/final      # what changed since the run that made x
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "recipe",
        help="check, list, show, copy and compare recipes",
        description="Work with recipes: YAML files that say how to convert a model, stage by stage.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = p.add_subparsers(dest="recipe_command", metavar="ACTION")

    check = verbs.add_parser("check", help="validate a recipe (file or shipped name) and print a summary")
    check.add_argument("recipe", help="a YAML file or the name of a shipped recipe")
    check.add_argument("overrides", nargs="*", help="KEY=VALUE overrides, e.g. stages.0.steps=10 lora.r=8")
    check.add_argument(
        "--no-path-check",
        action="store_true",
        help="schema only: do not read local data files, the base model's config.json or its tokenizer",
    )
    check.set_defaults(func=_check)

    ls = verbs.add_parser("ls", help="list shipped recipes with their descriptions")
    ls.set_defaults(func=_ls)

    show = verbs.add_parser("show", help="print a recipe (with overrides: the validated, resolved recipe)")
    show.add_argument("recipe", help="a YAML file, shipped name, URL, hf://..., or model folder")
    show.add_argument("overrides", nargs="*", help="KEY=VALUE overrides")
    show.add_argument(
        "--resolved", action="store_true", help="print every field, defaults filled in, paths resolved"
    )
    show.set_defaults(func=_show)

    cp = verbs.add_parser("cp", help="copy a shipped recipe to edit it")
    cp.add_argument("recipe", help="name of a shipped recipe (or a file)")
    cp.add_argument("dest", help="destination file, or a folder to copy NAME.yaml into")
    cp.add_argument("--force", action="store_true", help="overwrite an existing file")
    cp.set_defaults(func=_cp)

    diff = verbs.add_parser(
        "diff",
        help="field-by-field differences of two recipes, defaults made explicit; exit 1 when they differ",
    )
    diff.add_argument("a", metavar="A", help="a recipe: file, shipped name, URL, hf://..., or model folder")
    diff.add_argument("b", metavar="B", help="the recipe to compare it with (same forms)")
    diff.set_defaults(func=_diff)

    fields = verbs.add_parser("fields", help="print every recipe field with its type, default and meaning")
    fields.add_argument(
        "--markdown", action="store_true", help="print the Markdown tables of docs/recipes.md"
    )
    fields.set_defaults(func=_fields)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _recipe_file(name_or_path: str) -> Path:
    from llm2vec_lite.recipe import shipped_recipe_path

    path = Path(name_or_path).expanduser()
    return path if path.is_file() else shipped_recipe_path(name_or_path)


def _fmt_lr(value: float) -> str:
    return f"{value:.0e}" if value < 1e-2 else f"{value:g}"


def _check(args: argparse.Namespace) -> int:
    from llm2vec_lite.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides, check_paths=not args.no_path_check)
    if not args.no_path_check:
        from llm2vec_lite.checks import preflight

        preflight(recipe)  # the base model's config and tokenizer, local data sizes: no weights
    lora = recipe.lora
    targets = lora.target_modules if isinstance(lora.target_modules, str) else ",".join(lora.target_modules)
    print(f"{args.recipe}: OK ({len(recipe.stages)} stages)")
    print(f"  name         {recipe.name}")
    if recipe.description:
        print(f"  description  {recipe.description}")
    gguf = f" (gguf_file {recipe.gguf_file})" if recipe.gguf_file else ""
    print(f"  base_model   {recipe.base_model}{gguf}")
    print(
        f"  settings     {'bidirectional' if recipe.bidirectional else 'causal'} attention, pooling "
        f"{recipe.pooling}, max_length {recipe.max_length}, dtype {recipe.dtype}, autocast {recipe.autocast}, "
        f"window {recipe.window}, seed {recipe.seed}"
    )
    print(f"  lora         r {lora.r}, alpha {lora.alpha}, dropout {lora.dropout}, targets {targets}")
    print(f"  output_dir   {recipe.output_dir}")
    print(f"  fingerprint  {recipe.fingerprint}")
    header = f"  {'#':<3}{'kind':<12}{'steps':>7}{'batch':>7}{'lr':>9}  {'fingerprint':<18}data"
    print(header)
    for i, stage in enumerate(recipe.stages):
        sources = stage.sources()
        data = ", ".join(src.describe() for src in sources[:2])
        if len(sources) > 2:
            data += f" +{len(sources) - 2} more"
        extra = []
        parent = recipe.parent_stage(i)
        if stage.init_from:
            extra.append(f"from stage {parent + 1}" if parent is not None else f"from {stage.init_from}")
        if stage.kind == "mntp":
            extra.append(f"mask {stage.mask_probability} ({stage.mask_token})")
        elif stage.kind == "simcse":
            extra.append(f"dropout {stage.dropout}, tau {stage.temperature}")
        else:
            extra.append(f"tau {stage.temperature}" + (", hard negatives" if stage.hard_negatives else ""))
            if stage.gradcache_chunk_size:
                extra.append(f"gradcache {stage.gradcache_chunk_size}")
        print(
            f"  {i + 1:<3}{stage.kind:<12}{stage.steps:>7}{stage.batch_size:>7}{_fmt_lr(stage.learning_rate):>9}"
            f"  {recipe.stage_fingerprint(i):<18}{data}  [{'; '.join(extra)}]"
        )
    print(f"  total steps  {sum(s.steps for s in recipe.stages)}")
    return 0


def _ls(args: argparse.Namespace) -> int:
    from llm2vec_lite.recipe import list_recipes, recipe_description

    names = list_recipes()
    if not names:
        print("no shipped recipes")
        return 0
    width = max(len(n) for n in names)
    for name in names:
        print(f"{name:<{width}}  {recipe_description(name)}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from llm2vec_lite.recipe import load_recipe

    if args.overrides or args.resolved:
        recipe = load_recipe(args.recipe, args.overrides, check_paths=False)
        sys.stdout.write(recipe.to_yaml())
    else:
        from llm2vec_lite.recipe.sources import fetch_recipe

        sys.stdout.write(fetch_recipe(args.recipe).text)  # as written, wherever it comes from
    return 0


def _cp(args: argparse.Namespace) -> int:
    source = _recipe_file(args.recipe)
    dest = Path(args.dest).expanduser()
    if dest.is_dir():
        dest = dest / source.name
    if dest.exists() and not args.force:
        print(f"error: {dest} already exists; pass --force to overwrite it", file=sys.stderr)
        return 1
    if not dest.parent.is_dir():
        print(f"error: cannot copy to {dest}: folder {dest.parent} does not exist", file=sys.stderr)
        return 1
    shutil.copyfile(source, dest)
    print(f"copied {source.name} to {dest}")
    print("relative paths in it now resolve against", dest.parent.resolve())
    return 0


def _diff(args: argparse.Namespace) -> int:
    from llm2vec_lite.recipe import load_recipe
    from llm2vec_lite.recipe.diff import diff_recipes, format_diff

    a = load_recipe(args.a, check_paths=False)
    b = load_recipe(args.b, check_paths=False)
    diffs = diff_recipes(a, b)
    print(format_diff(args.a, args.b, diffs, a, b))
    return 1 if diffs else 0


def _fields(args: argparse.Namespace) -> int:
    from llm2vec_lite.recipe import field_reference, field_reference_markdown

    if args.markdown:
        sys.stdout.write(field_reference_markdown())
        return 0
    current = None
    for section, name, kind, default, desc in field_reference():
        if section != current:
            print(f"\n[{section or 'top level'}]")
            current = section
        print(f"  {name:<28} {kind}  (default: {default})")
        print(f"  {'':<28} {desc}")
    return 0
