"""Operator commands: ``python -m worker_llm_client <command>``.

    seed [--root PATH] [--dry-run]            push prompts/ + schemas/ and llm_profiles.yaml to Firestore
    prompts push [--root PATH] [--dry-run]    push the prompts only
    profiles push [--root PATH] [--dry-run]   push the LLM profiles only
    lint [--root PATH]            offline checks of prompts, schemas, profiles and governance.yaml
    env-file [--root PATH] [--set KEY=VALUE ...]   the function's env vars (allowlists from governance.yaml) as YAML

Pushes go to the project in GOOGLE_CLOUD_PROJECT (database FIRESTORE_DATABASE); the client honours
FIRESTORE_EMULATOR_HOST. Exit codes: 0 ok, 1 failure, 2 bad input or a missing prerequisite.
Heavy modules are imported inside the commands, so ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from worker_llm_client.catalog.push import PushResult

Command = Callable[[argparse.Namespace], int]
_Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"  # not subscriptable at runtime


def describe_push(result: PushResult, dry_run: bool = False) -> str:
    """``prompts/weekly_report  v1  created`` (or ``unchanged``; ``would create`` in a dry run)."""
    outcome = "created" if result.changed else "unchanged"
    if dry_run and result.changed:
        outcome = "would create"
    return f"{result.collection}/{result.doc_id}  v{result.version}  {outcome}"


def _push(root: Path, prompts: bool, profiles: bool, dry_run: bool = False) -> int:
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import firestore

    from worker_llm_client.catalog.documents import PROFILES, PROMPTS
    from worker_llm_client.catalog.sources import SourceError, load_profiles, load_prompts
    from worker_llm_client.config import Settings

    config = Settings.from_env()
    if not config.project:
        return _fail("GOOGLE_CLOUD_PROJECT is not set (for the local emulator, set FIRESTORE_EMULATOR_HOST too)")
    if prompts and not (root / "prompts").is_dir():
        return _fail(f"{root / 'prompts'} is not a directory; run from the repository root or pass --root")
    try:
        todo = [(PROMPTS, load_prompts(root / "prompts", root / "schemas"))] if prompts else []
        todo += [(PROFILES, load_profiles(root / "llm_profiles.yaml"))] if profiles else []
        db = firestore.Client(project=config.project, database=config.database)
    except SourceError as exc:
        return _fail(str(exc))
    except DefaultCredentialsError as exc:
        return _fail(f"no Firestore credentials ({exc}); set FIRESTORE_EMULATOR_HOST to use the emulator")
    return _write(db, todo, dry_run)


def _write(db: Any, todo: list[tuple[str, dict[str, dict[str, Any]]]], dry_run: bool) -> int:
    from google.api_core.exceptions import GoogleAPIError

    from worker_llm_client.catalog.push import push

    try:
        for collection, bodies in todo:
            for doc_id, body in bodies.items():
                result = push(db, collection, doc_id, body, dry_run=dry_run)
                print(describe_push(result, dry_run), flush=True)
                for line in result.diff:
                    print(f"    {line}", flush=True)
    except (GoogleAPIError, ValueError) as exc:  # ValueError: the SDK's failed rollback hides the real error
        cause = exc.__context__ or exc
        print(f"error: writing to Firestore failed: {str(cause).splitlines()[0][:300]}", file=sys.stderr)
        return 1
    return 0


def _lint(args: argparse.Namespace) -> int:
    from worker_llm_client.catalog.lint import lint

    findings = lint(args.root)
    for finding in findings:
        print(finding, flush=True)
    errors = sum(1 for f in findings if f.level == "error")
    print(f"lint: {errors} error(s), {len(findings) - errors} notice(s)", flush=True)
    return 1 if errors else 0


def _env_file(args: argparse.Namespace) -> int:
    from worker_llm_client.catalog.sources import SourceError, load_governance

    try:
        governance = load_governance(args.root / "governance.yaml")
    except SourceError as exc:
        return _fail(str(exc))
    env = {
        "ALLOWED_LLM_PROFILES": ",".join(sorted(governance["allowedLlmProfiles"])),
        "ALLOWED_MODELS": ",".join(sorted(governance["allowedModels"])),
    }
    for pair in args.set:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            return _fail(f"--set expects KEY=VALUE, got {pair!r}")
        env[key] = value
    for key, value in env.items():
        print(f"{key}: {json.dumps(value)}")
    return 0


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _add(subparsers: _Subparsers, name: str, help: str) -> argparse.ArgumentParser:
    return subparsers.add_parser(name, help=help, description=help)


def _add_push(subparsers: _Subparsers, name: str, help: str, prompts: bool = True, profiles: bool = True) -> None:
    parser = _add(subparsers, name, help)
    _add_root(parser)
    parser.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    parser.set_defaults(run=lambda args: _push(args.root, prompts, profiles, args.dry_run))


def _add_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root (default: current directory)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m worker_llm_client", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_push(commands, "seed", "push prompts and LLM profiles to Firestore")
    prompts = _add(commands, "prompts", "manage prompts").add_subparsers(dest="action", required=True)
    _add_push(prompts, "push", "push prompts/ + schemas/ to Firestore", profiles=False)
    profiles = _add(commands, "profiles", "manage LLM profiles").add_subparsers(dest="action", required=True)
    _add_push(profiles, "push", "push llm_profiles.yaml to Firestore", prompts=False)
    lint = _add(commands, "lint", "offline checks of prompts, schemas, profiles and governance.yaml")
    _add_root(lint)
    lint.set_defaults(run=_lint)
    env_file = _add(commands, "env-file", "print the function's environment (allowlists from governance.yaml) as YAML")
    _add_root(env_file)
    env_file.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="add or override a variable")
    env_file.set_defaults(run=_env_file)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Command = args.run
    return run(args)
