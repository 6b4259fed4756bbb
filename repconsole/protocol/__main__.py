"""``python -m repconsole.protocol schema [--write | --check]``: the generated JSON Schema."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from repconsole.protocol.schema import schema_text

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "docs" / "protocol.schema.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repconsole.protocol", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("schema", help="print, write or check docs/protocol.schema.json")
    mode = cmd.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write the file")
    mode.add_argument("--check", action="store_true", help="exit 1 if the file differs from the generated schema")
    cmd.add_argument("--path", type=Path, default=DEFAULT_PATH, help=f"the schema file (default {DEFAULT_PATH})")
    args = parser.parse_args(argv)
    text = schema_text()
    if args.write:
        args.path.write_text(text, encoding="utf-8")
        print(f"wrote {args.path}")
        return 0
    if args.check:
        current = args.path.read_text(encoding="utf-8") if args.path.exists() else ""
        if current != text:
            print(f"{args.path} is out of date: run `make schema`", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
