"""Write ``docs/prediction.schema.json`` from :data:`emoscope.PREDICTION_SCHEMA`.

    python docs/make_schema.py           # (re)write the file
    python docs/make_schema.py --check   # exit 1 if the file is missing or out of date

``tests/test_package.py`` fails when the published file and the schema in the code differ.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from emoscope import PREDICTION_SCHEMA
from emoscope._io import write_json

__all__ = ["SCHEMA_PATH", "main"]

SCHEMA_PATH = Path(__file__).resolve().parent / "prediction.schema.json"


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with ``--check`` compare) the schema file; return the exit code."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    ap.add_argument("--out", type=Path, default=SCHEMA_PATH, help="schema file to write")
    args = ap.parse_args(argv)
    if args.check:
        try:
            current = json.loads(args.out.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            print(f"{args.out}: cannot read the schema ({e})", file=sys.stderr)
            return 1
        if current != PREDICTION_SCHEMA:
            print(f"{args.out} is out of date; run python docs/make_schema.py", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    write_json(args.out, PREDICTION_SCHEMA)
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
