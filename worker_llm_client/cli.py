"""Operator commands: ``python -m worker_llm_client <command>``.

    seed [--root PATH] [--dry-run]            push prompts/ + schemas/ and llm_profiles.yaml to Firestore
    prompts push [--root PATH] [--dry-run]    push the prompts only
    profiles push [--root PATH] [--dry-run]   push the LLM profiles only
    lint [--root PATH]            offline checks of prompts, schemas, profiles and governance.yaml
    env-file [--root PATH] [--set KEY=VALUE ...]   the function's env vars (allowlists from governance.yaml) as YAML
    doctor [--root PATH | --firestore] [--env-file F | --terraform-plan F] [--network] [--json]
                                  the environment against the allowlisted profiles, and what to fix
    status RUN_ID [--json] [--watch [--interval S] [--timeout S]]   a run's steps: status, attempts, timings, errors
    logs RUN_ID [--step S] [--project P] [--query-only]   the Cloud Logging filter, and the lines via gcloud
    redrive RUN_ID STEP_ID [--force] [--by WHO]   a FAILED or RETRY_WAIT step back to READY, with a fresh budget
    cleanup [--bucket B] [--older-than DAYS] [--delete] [--prefix P] [--limit N] [--include-invalid] [--verbose]
                                  report objects no run refers to, older than DAYS (7): listed, deleted with --delete

Pushes, status and redrive go to the project in GOOGLE_CLOUD_PROJECT (database FIRESTORE_DATABASE);
the client honours FIRESTORE_EMULATOR_HOST. Exit codes: 0 ok, 1 failure, 2 bad input or a missing
prerequisite (an unknown run or step), 130 interrupted. Heavy modules are imported inside the
commands, so ``--help`` stays instant (the operations' logic is in ``operations/``).
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
    from worker_llm_client.catalog.documents import PROFILES, PROMPTS
    from worker_llm_client.catalog.sources import SourceError, load_profiles, load_prompts
    from worker_llm_client.operations import OperatorError
    from worker_llm_client.operations.store import connect

    try:
        db = connect()  # the client every operator command uses: GOOGLE_CLOUD_PROJECT, FIRESTORE_DATABASE
    except OperatorError as exc:
        return _fail(exc.message)
    if prompts and not (root / "prompts").is_dir():
        return _fail(f"{root / 'prompts'} is not a directory; run from the repository root or pass --root")
    try:
        todo = [(PROMPTS, load_prompts(root / "prompts", root / "schemas"))] if prompts else []
        todo += [(PROFILES, load_profiles(root / "llm_profiles.yaml"))] if profiles else []
    except SourceError as exc:
        return _fail(str(exc))
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


def _doctor(args: argparse.Namespace) -> int:
    from worker_llm_client.operations import doctor
    from worker_llm_client.operations.doctor_sources import gather

    inputs = gather(args.root, args.env_file, args.terraform_plan, args.firestore, args.network)
    network = None
    if args.network:
        from worker_llm_client.operations.doctor_network import as_network

        network = as_network()
    checks = doctor.diagnose(inputs, network)
    if args.json:
        print(doctor.as_json(checks, inputs), flush=True)
    else:
        print(doctor.render(checks, inputs), flush=True)
    return doctor.exit_code(checks)


def _status(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from worker_llm_client.models import RunSnapshot
    from worker_llm_client.operations import status, store

    def show(run: RunSnapshot) -> None:
        now = datetime.now(UTC)
        rows = status.step_rows(run, now)
        if args.json:
            print(json.dumps(status.as_json(run, rows, now), indent=None if args.watch else 2), flush=True)
            return
        clear = "\033[H\033[J" if args.watch and sys.stdout.isatty() else ""
        print(clear + status.table(run, rows, now) + ("\n" if args.watch and not clear else ""), flush=True)

    client = store.connect()
    try:
        if not args.watch:
            show(store.read_run(client, args.run_id))
            return 0
        if status.watch(lambda: store.read_run(client, args.run_id), show, args.interval, args.timeout):
            return 0
    finally:
        client.close()
    print(f"error: run '{args.run_id}' still has steps running or ready after {args.timeout:g} s", file=sys.stderr)
    return 1


def _logs(args: argparse.Namespace) -> int:
    import shutil

    from worker_llm_client.operations import OperatorError, logs, store

    project = args.project or store.project()
    if not project:
        raise OperatorError("GOOGLE_CLOUD_PROJECT is not set; set it or pass --project")
    query = logs.log_filter(args.run_id, args.step)
    print(f"# Cloud Logging filter: {query}\n{logs.paste_line(query, project)}", flush=True)
    gcloud = None if args.query_only else shutil.which("gcloud")
    if gcloud is None:
        if not args.query_only:
            print("gcloud is not on PATH: run the command above where it is", file=sys.stderr)
        return 0
    entries = logs.read_entries(gcloud, query, project)
    for entry in entries:
        print(logs.entry_line(entry))
    print(f"# {len(entries)} log entries", flush=True)
    return 0


def _redrive(args: argparse.Namespace) -> int:
    from worker_llm_client.operations import redrive, store

    client = store.connect()
    try:
        done = redrive.redrive(client, args.run_id, args.step_id, args.by or redrive.operator(), args.force)
    finally:
        client.close()
    print(done.describe(), flush=True)
    return 0


def _cleanup(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    import google.cloud.storage as storage
    from google.auth.exceptions import DefaultCredentialsError

    from worker_llm_client.config import Settings
    from worker_llm_client.operations import OperatorError, cleanup, store

    config = Settings.from_env()
    bucket = args.bucket or config.artifacts_bucket
    if not bucket:
        raise OperatorError("no bucket: set ARTIFACTS_BUCKET or pass --bucket")
    if not args.prefix.startswith(cleanup.PREFIX):
        raise OperatorError(f"--prefix must start with {cleanup.PREFIX!r}, got {args.prefix!r}")
    policy = cleanup.Policy(bucket, args.now or datetime.now(UTC), args.older_than, args.include_invalid)

    client = store.connect()
    try:
        gcs = storage.Client(project=config.project)
    except DefaultCredentialsError as exc:
        client.close()
        raise OperatorError(f"no GCS credentials ({exc}); set STORAGE_EMULATOR_HOST for fake-gcs-server") from exc
    try:
        print(cleanup.header(bucket, args.prefix, config.project, config.database, policy, not args.delete), flush=True)
        summary = cleanup.sweep(
            cleanup.list_objects(gcs, bucket, args.prefix, args.limit),
            cleanup.run_reader(client),
            policy,
            cleanup.deleter(gcs, bucket) if args.delete else None,
            lambda line: print(line, flush=True),
            verbose=args.verbose,
            limit=args.limit,
        )
    finally:
        client.close()
        gcs.close()
    print(summary.line(dry_run=not args.delete), flush=True)
    if summary.failure is not None:
        raise OperatorError(summary.failure, exit_code=1)
    return 0


def _operation(command: Command) -> Command:
    """An operator command: its ``OperatorError`` is a message on stderr and an exit code; Ctrl-C is 130."""

    def run(args: argparse.Namespace) -> int:
        from worker_llm_client.operations import OperatorError

        try:
            return command(args)
        except OperatorError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return exc.exit_code
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return run


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 36500:  # also refuses NaN and inf
        raise argparse.ArgumentTypeError(f"expected a number of days >= 0, got {text!r}")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _instant(text: str) -> Any:
    from datetime import UTC, datetime

    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an RFC 3339 time, got {text!r}") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


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
    _add_doctor(commands)
    _add_operations(commands)
    return parser


def _add_doctor(commands: _Subparsers) -> None:
    doctor = _add(commands, "doctor", "check the environment against the allowlisted profiles and say what to fix")
    _add_root(doctor)
    doctor.add_argument("--firestore", action="store_true", help="check the profiles and prompts in Firestore")
    env = doctor.add_mutually_exclusive_group()
    env.add_argument("--env-file", type=Path, default=None, help="the environment as `env-file` renders it")
    env.add_argument(
        "--terraform-plan", type=Path, default=None, metavar="JSON", help="the functions' environment in a plan"
    )
    doctor.add_argument("--network", action="store_true", help="also call each profile's endpoint (no tokens)")
    doctor.add_argument("--json", action="store_true", help="one JSON document")
    doctor.set_defaults(run=_operation(_doctor))


def _add_operations(commands: _Subparsers) -> None:
    status = _add(commands, "status", "a run's steps: status, attempt, timings, error, artifact, tokens, cost (UTC)")
    status.add_argument("run_id", metavar="RUN_ID")
    status.add_argument("--json", action="store_true", help="one JSON document (one line per refresh with --watch)")
    status.add_argument("--watch", action="store_true", help="refresh until no step is RUNNING or READY to be claimed")
    status.add_argument("--interval", type=_seconds, default=2.0, help="seconds between refreshes (default 2)")
    status.add_argument("--timeout", type=_seconds, default=None, help="stop watching after this many seconds (exit 1)")
    status.set_defaults(run=_operation(_status))
    logs = _add(commands, "logs", "the Cloud Logging filter of a run (or a step), and its lines when gcloud is at hand")
    logs.add_argument("run_id", metavar="RUN_ID")
    logs.add_argument("--step", default=None, metavar="STEP_ID", help="only this step's lines")
    logs.add_argument("--project", default="", help="project to read (default: GOOGLE_CLOUD_PROJECT)")
    logs.add_argument("--query-only", action="store_true", help="print the filter and the command, run nothing")
    logs.set_defaults(run=_operation(_logs))
    redrive = _add(commands, "redrive", "set a FAILED or RETRY_WAIT LLM_REPORT step back to READY with a fresh budget")
    redrive.add_argument("run_id", metavar="RUN_ID")
    redrive.add_argument("step_id", metavar="STEP_ID")
    redrive.add_argument("--force", action="store_true", help="also re-drive a SUCCEEDED or RUNNING step")
    redrive.add_argument("--by", default="", help="who re-drives (default: $USER@hostname)")
    redrive.set_defaults(run=_operation(_redrive))
    _add_cleanup(commands)


def _add_cleanup(commands: _Subparsers) -> None:
    cleanup = _add(
        commands, "cleanup", "list (with --delete, delete) report objects no run refers to, older than a grace period"
    )
    cleanup.add_argument("--bucket", default="", help="bucket to clean (default: ARTIFACTS_BUCKET)")
    cleanup.add_argument(
        "--older-than", type=_days, default=7.0, metavar="DAYS", help="grace period in days (default 7)"
    )
    cleanup.add_argument("--delete", action="store_true", help="delete them (default: a dry run that lists them)")
    cleanup.add_argument("--prefix", default="flow_runs/", help="only objects under this prefix (default flow_runs/)")
    cleanup.add_argument("--limit", type=_count, default=None, metavar="N", help="scan at most N objects")
    cleanup.add_argument(
        "--include-invalid", action="store_true", help="also rejected replies (*.invalid.json; default: lifecycle rule)"
    )
    cleanup.add_argument("--verbose", action="store_true", help="also print every object kept, and why")
    cleanup.add_argument("--now", type=_instant, default=None, help=argparse.SUPPRESS)  # tests: the clock
    cleanup.set_defaults(run=_operation(_cleanup))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Command = args.run
    return run(args)
