"""``python -m devstack demo|stub``: the local stack's commands (``make demo``, ``make stub``).

demo [--keep-running] [--latency S] [--model local]   the main job on the local stack
stub [--api gemini|openai|anthropic] [--host H] [--port P] [--latency S]   serve a local model API stub
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

STUBS = {  # --api -> the stub's module and its default port
    "gemini": ("devstack.gemini_stub", 8089),
    "openai": ("devstack.openai_stub", 8090),
    "anthropic": ("devstack.anthropic_stub", 8091),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=(__doc__ or "").split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser("demo", help="run the demo flow on the local stack (emulators + Gemini stub)")
    demo.add_argument("--keep-running", action="store_true", help="keep the stack up after the run until Ctrl-C")
    demo.add_argument("--latency", type=float, default=0.3, help="stub reply delay in seconds (default 0.3)")
    demo.add_argument(
        "--model",
        choices=("local",),
        help="local: a real model, offline (SmolLM2-135M on llama.cpp, built by make local-model);"
        " default: the Gemini stub, or real Gemini when GEMINI_API_KEY is set",
    )
    stub = commands.add_parser("stub", help="serve a local stub of a model API (Gemini, OpenAI, Anthropic)")
    stub.add_argument("--api", choices=tuple(STUBS), default="gemini", help="whose wire format (default gemini)")
    stub.add_argument("--host", default="127.0.0.1")
    stub.add_argument("--port", type=int, help="default: 8089 (gemini), 8090 (openai), 8091 (anthropic)")
    stub.add_argument("--latency", type=float, default=0.0, help="reply delay in seconds")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from devstack.demo import run_demo

        return run_demo(latency=args.latency, keep_running=args.keep_running, model=args.model)
    import importlib

    module, default_port = STUBS[args.api]
    port = default_port if args.port is None else args.port
    serve = importlib.import_module(module).main
    return int(serve(["--host", args.host, "--port", str(port), "--latency", str(args.latency)]))


if __name__ == "__main__":
    raise SystemExit(main())
