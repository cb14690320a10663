"""Write the JSON Schemas of the boundary records (``distillguard.records``) into ``docs/schemas``.

    python scripts/write_schemas.py           # after changing a record
    python scripts/write_schemas.py --check   # exit 1, naming them, if any committed schema is stale

``tests/test_records.py`` runs the same comparison.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from distillguard.records.schemas import FILES, schema_text

DEST = Path(__file__).resolve().parents[1] / "docs" / "schemas"


def stale(dest: Path) -> list[str]:
    """Schema files under ``dest`` that differ from the records (missing ones included, and strays)."""
    expected = {f"{name}.schema.json": schema_text(name) for name in FILES}
    present = {p.name for p in dest.glob("*.schema.json")}
    wrong = [n for n, text in expected.items() if not (dest / n).is_file() or (dest / n).read_text() != text]
    return sorted(wrong + [n for n in present if n not in expected])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 if any schema is stale")
    ap.add_argument("--dest", type=Path, default=DEST, help=f"folder of the schemas (default {DEST})")
    args = ap.parse_args(argv)
    if args.check:
        wrong = stale(args.dest)
        for name in wrong:
            print(f"stale: {args.dest / name}", file=sys.stderr)
        return 1 if wrong else 0
    args.dest.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        (args.dest / f"{name}.schema.json").write_text(schema_text(name))
        print(f"wrote {args.dest / name}.schema.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
