"""``llm2vec-lite convert``: run a recipe, or show what running it would do.

The recipe is a shipped name (``llm2vec-lite recipe ls``), a YAML path, an ``https://`` URL, an
``hf://ORG/REPO/path/recipe.yaml`` reference, or a model folder (or hub model id) holding the
``recipe.yaml`` a conversion wrote (:mod:`llm2vec_lite.recipe.sources`); ``key=value`` overrides
change it on the command line. A recipe from a model folder has its data checked against the
folder's ``provenance.json`` before training (``--strict`` refuses a difference). Multi-GPU / multi-process runs go through ``accelerate launch``
with ``--multi_gpu`` (on a machine without GPUs too: the processes then talk over gloo)::

    accelerate launch --multi_gpu --num_processes 4 -m llm2vec_lite convert my.yaml

One stage at a time: ``--until STAGE`` stops after that stage, ``--from STAGE`` reuses the finished
stages before it (and stops with an error if one is missing or was trained with another recipe).
STAGE is a number (1-based), a folder name (``02-simcse``) or a kind that occurs once (``simcse``).

Without ``--multi_gpu`` accelerate starts ONE process whatever ``--num_processes`` says; convert
then warns and names the command above (docs/training.md).
"""

from __future__ import annotations

import argparse
import logging
import os
from functools import partial

ONE_PROCESS_ENV = "LLM2VEC_LITE_ONE_PROCESS"
"""Set to 1, the same as ``--one-process``."""

EPILOG = """examples:
  llm2vec-lite convert smollm2-135m-cpu --dry-run
  llm2vec-lite convert recipes/tiny.yaml stages.0.steps=10 lora.r=8
  llm2vec-lite convert my.yaml --overwrite          # retrain stages trained with another recipe
  llm2vec-lite convert my.yaml --until mntp         # train stage 1 only, look at it, then ...
  llm2vec-lite convert my.yaml --from 2             # ... go on, reusing the finished 01-mntp
  llm2vec-lite convert runs/x/final --strict        # re-run the recipe that made a model folder
  llm2vec-lite convert https://example.org/r.yaml   # or hf://ORG/REPO/recipe.yaml, or a hub model id
  accelerate launch --multi_gpu --num_processes 2 -m llm2vec_lite convert my.yaml   # 2 processes, CPU or GPU
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="turn a decoder into an encoder by running a recipe's stages",
        description="Run the stages of RECIPE (MNTP, SimCSE, supervised) and write the encoder to "
        "OUTPUT_DIR/final. Finished stages are skipped; a killed stage resumes from its checkpoint.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("recipe", metavar="RECIPE", help="shipped recipe name, recipe YAML path or https:// URL, hf://ORG/REPO/path.yaml, or a model folder / "
        "hub model id holding recipe.yaml")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="recipe overrides, e.g. stages.0.steps=10")
    p.add_argument("--dry-run", action="store_true", help="print the plan (stages, steps, tokens, LoRA size) and exit")
    p.add_argument(
        "--overwrite", action="store_true", help="retrain stages whose folders hold another recipe's results"
    )
    p.add_argument(
        "--until", metavar="STAGE",
        help="stop after this stage (a number from 1, a folder name like 02-simcse, or a kind used once); "
        "no final encoder is written",
    )
    p.add_argument(
        "--from", dest="start", metavar="STAGE",
        help="train from this stage on, reusing the finished stages before it (an error if one is missing "
        "or was trained with another recipe)",
    )
    p.add_argument(
        "--strict", action="store_true",
        help="with a recipe from a model folder: refuse to start when a data file's sha256 differs from "
        "the one in its provenance.json (default: report it and go on)",
    )
    p.add_argument(
        "--one-process", action="store_true",
        help="train every stage in this process (default on a CPU: after each stage the command restarts "
        "itself for the next, so memory an earlier stage left behind does not add to the next one's peak; "
        "a few seconds of imports a stage). LLM2VEC_LITE_ONE_PROCESS=1 in the environment does the same",
    )
    p.add_argument(
        "--card-template", metavar="FILE",
        help="Jinja template for final/README.md instead of the recipe's card_template or the built-in one",
    )
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    from llm2vec_lite.pipeline import convert
    from llm2vec_lite.recipe import load_recipe
    from llm2vec_lite.runtime.stage_restart import restart_for_next_stages, stages_to_retrain

    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        args._parser.error(f"overrides must look like key.path=value, got {bad[0]!r} (e.g. stages.0.steps=10)")
    recipe = load_recipe(args.recipe, args.overrides, allow_missing_data=args.dry_run)
    _check_provenance(recipe, strict=args.strict)
    _warn_process_shortfall()
    # exec replaces the process only on POSIX (on Windows the caller would see the command end early)
    one_process = args.one_process or os.environ.get(ONE_PROCESS_ENV) == "1" or os.name != "posix"
    out = convert(
        recipe, dry_run=args.dry_run, overwrite=args.overwrite, start=args.start, until=args.until,
        card_template=args.card_template,
        restart=None if one_process else partial(restart_for_next_stages, recipe.fingerprint),
        retrain=stages_to_retrain(recipe.fingerprint),
    )
    if args.dry_run:
        return 0
    if out == recipe.final_dir:
        print(f"encoder written to {out}")
    else:
        print(f"stopped after {out.name} (--until): {out}")
    return 0


def _check_provenance(recipe, *, strict: bool) -> None:
    """Before training a recipe from a model folder: is its data the data the model was made from?

    Raises:
        RecipeError: With ``strict``, if a local data file's sha256 differs from provenance.json.
    """
    if recipe._provenance is None:
        return
    from llm2vec_lite.errors import RecipeError
    from llm2vec_lite.sharing.provenance import data_mismatches

    problems = data_mismatches(recipe, recipe._provenance)
    if not problems:
        return
    report = "data differs from the model's provenance.json:\n" + "\n".join(f"  {p}" for p in problems)
    if strict:
        raise RecipeError(report + "\n--strict: not starting; drop --strict to train on this data anyway")
    logging.getLogger("llm2vec_lite").warning(report)


def _warn_process_shortfall() -> None:
    """Say so when ``accelerate launch --num_processes N`` started fewer than N processes."""
    from llm2vec_lite.checks import launched_processes, process_shortfall_message, requested_processes

    message = process_shortfall_message(requested_processes(), launched_processes())
    if message:
        logging.getLogger("llm2vec_lite").warning(message)
