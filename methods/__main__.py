"""`python -m methods`: every registered method with its family, backend, mergeability, paper and
the defaults its yaml sets (the paper-recommended hyper-parameters a sweep starts from)."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

import methods

CONF = Path(__file__).resolve().parent.parent / "conf" / "method"


def rows() -> list[dict]:
    out = []
    for name in methods.names():
        cls = methods.get(name)
        defaults = yaml.safe_load((CONF / f"{name}.yaml").read_text())
        defaults.pop("name", None)
        out.append({"method": name, "family": cls.family, "backend": cls.backend, "mergeable": cls.mergeable,
                    "paper": cls.paper, "defaults": defaults})
    return out


def main() -> int:
    listing = rows()
    for row in listing:
        defaults = ", ".join(f"{k}={v}" for k, v in row["defaults"].items())
        print(f"{row['method']:<17} {row['family']:<10} {row['backend']:<6} "
              f"{'mergeable' if row['mergeable'] else 'unmerged':<9} {row['paper']}\n{'':<17} {defaults}")
    by_backend = {b: sum(r["backend"] == b for r in listing) for b in ("peft", "native")}
    print(f"\n{len(listing)} methods: {by_backend['peft']} delegate to peft, {by_backend['native']} implemented here")
    return 0


if __name__ == "__main__":
    sys.exit(main())
