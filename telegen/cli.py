"""`telegen generate|...` and the seed-compatible `telemetry-generator`: thin
wrappers over the library. A user error prints one line and exits 2."""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import yaml

from . import __version__
from .config import GeneratorConfig
from .errors import TelegenError
from .generate import generate
from .summary import describe
from .templates import check_writable

EXIT_USAGE = 2


def _add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="PATH", help="generator config (YAML)")
    parser.add_argument("--json", action="store_true", help="also write OTLP JSON files, for debugging")
    parser.add_argument("--output-dir", metavar="DIR",
                        help="where to write templates (overrides output.directory; default: current directory)")
    parser.add_argument("--seed", type=int, metavar="N", help="random seed (overrides the config's seed)")


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _sets_output_directory(path: str) -> bool:
    # The file already parsed cleanly through GeneratorConfig.from_file.
    data = yaml.safe_load(Path(path).read_text()) or {}
    output = data.get("output")
    return isinstance(output, dict) and "directory" in output


def run_generate(args: argparse.Namespace) -> int:
    config = GeneratorConfig.from_file(args.config)
    if args.seed is not None and args.seed < 0:
        raise TelegenError(f"--seed: {args.seed} is invalid: expected an integer >= 0")
    # --output-dir wins, then output.directory when the config file sets it;
    # otherwise the command writes where it is run, as the seed tool did.
    if args.output_dir:
        directory = Path(args.output_dir)
    elif _sets_output_directory(args.config):
        directory = Path(config.output.directory)
    else:
        directory = Path(".")
    config = replace(config, output=replace(config.output, directory=str(directory)))
    check_writable(directory)
    started = time.perf_counter()
    templates = generate(config, seed=args.seed)
    elapsed = time.perf_counter() - started
    counts = templates.counts
    print(f"Generated in {elapsed:.1f}s (seed {templates.metadata['seed']}):")
    print(f"  traces:  {counts.get('traces', 0)} traces, {counts.get('spans', 0)} spans"
          f" ({counts.get('high_span_traces', 0)} high-span)")
    print(f"  metrics: {counts.get('metrics', 0)} metrics, {counts.get('series', 0)} time series")
    print(f"  logs:    {counts.get('logs', 0)} log records")
    for path in templates.save(directory, json=args.json):
        print(f"Wrote {path} ({_human_bytes(path.stat().st_size)})")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    print(describe(args.directory))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="telegen", description="Realistic OTLP load generation.")
    parser.add_argument("--version", action="version", version=f"telegen {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    gen = commands.add_parser("generate", help="build trace, metric and log templates from a YAML config")
    _add_generate_arguments(gen)
    gen.set_defaults(handler=run_generate)
    insp = commands.add_parser("inspect", help="summarise a template directory and draw a sample trace")
    insp.add_argument("directory", metavar="DIR", help="directory written by `telegen generate`")
    insp.set_defaults(handler=run_inspect)
    return parser


def _run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except TelegenError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    return _run(build_parser(), argv)


def telemetry_generator_main(argv: Sequence[str] | None = None) -> int:
    """The seed project's command name: `telemetry-generator --config ...`."""
    parser = argparse.ArgumentParser(prog="telemetry-generator",
                                     description="Generate OTLP templates (same as `telegen generate`).")
    _add_generate_arguments(parser)
    parser.set_defaults(handler=run_generate)
    return _run(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
