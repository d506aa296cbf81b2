"""Rewrite the Mermaid state diagrams in docs/lifecycle.md from paymux.domain.lifecycle's tables.

    .venv/bin/python scripts/gen_lifecycle_doc.py           # rewrite the doc in place
    .venv/bin/python scripts/gen_lifecycle_doc.py --check   # exit 1 if the doc is stale

Each diagram sits between a pair of markers; everything outside them is prose and left alone:

    <!-- BEGIN GENERATED payment (scripts/gen_lifecycle_doc.py) -->
    ```mermaid
    ...
    ```
    <!-- END GENERATED payment -->

tests/domain/test_lifecycle_doc.py runs the same comparison as ``--check``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

from paymux.domain.lifecycle import mermaid, refund_mermaid

DOC = Path(__file__).resolve().parent.parent / "docs" / "lifecycle.md"

#: marker name -> the function that draws that diagram
DIAGRAMS: dict[str, Callable[[], str]] = {"payment": mermaid, "refund": refund_mermaid}


def _block(name: str, body: str) -> str:
    return (
        f"<!-- BEGIN GENERATED {name} (scripts/gen_lifecycle_doc.py) -->\n"
        f"```mermaid\n{body}```\n"
        f"<!-- END GENERATED {name} -->"
    )


def render(text: str) -> str:
    """``text`` with every generated block replaced by what the tables draw now."""
    for name, draw in DIAGRAMS.items():
        pattern = re.compile(
            rf"<!-- BEGIN GENERATED {name}\b.*?-->.*?<!-- END GENERATED {name} -->", re.DOTALL
        )
        if len(pattern.findall(text)) != 1:
            raise ValueError(f"{DOC.name}: expected exactly one generated block named {name!r}")
        block = _block(name, draw())
        text = pattern.sub(lambda _, block=block: block, text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether it is stale")
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args(argv)
    current = args.doc.read_text(encoding="utf-8")
    wanted = render(current)
    if current == wanted:
        return 0
    if args.check:
        print(f"{args.doc} is stale: run scripts/gen_lifecycle_doc.py", file=sys.stderr)
        return 1
    args.doc.write_text(wanted, encoding="utf-8")
    print(f"rewrote {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
