"""``llm2vec-lite push``: publish a model folder (``final/``) to the Hugging Face hub.

Everything in the folder goes up in one commit (the repo is created if missing); the commit
message names the recipe and its fingerprint. ``--dry-run`` lists the files and needs neither a
token nor the network. Without them a real push stops before the folder is read
(:mod:`llm2vec_lite.sharing.push`).
"""

from __future__ import annotations

import argparse

EPILOG = """examples:
  llm2vec-lite push runs/smollm2-135m-cpu/final me/smollm2-135m-encoder --dry-run
  llm2vec-lite push runs/smollm2-135m-cpu/final me/smollm2-135m-encoder --private
  llm2vec-lite push runs/x/final me/x --revision ablation-r8   # a branch of an existing repo
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "push",
        help="upload a model folder to the Hugging Face hub in one commit",
        description="Upload FOLDER (an encoder folder convert wrote) to the hub model repo REPO_ID: "
        "the repo is created if missing, every file goes in one commit named after the recipe.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("folder", metavar="FOLDER", help="the model folder, e.g. runs/NAME/final")
    p.add_argument("repo_id", metavar="REPO_ID", help="hub model repo, ORG/NAME")
    p.add_argument("--private", action="store_true", help="create the repo private (an existing repo keeps its visibility)")
    p.add_argument("--revision", metavar="BRANCH", help="commit to this branch (created from main if missing)")
    p.add_argument("--dry-run", action="store_true", help="list the files and the commit message; upload nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llm2vec_lite.sharing.push import check_hub_access, plan_push, push

    if args.dry_run:
        print(plan_push(args.folder).describe(args.repo_id, args.revision))
        return 0
    token = check_hub_access()  # before the folder is read
    url = push(args.folder, args.repo_id, private=args.private, revision=args.revision, token=token)
    print(f"pushed {args.folder} to {args.repo_id}: {url}")
    return 0
