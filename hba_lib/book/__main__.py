"""``python -m hba_lib.book [--out DIR] [--check]``: build the course book (``make book``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hba_lib.book import build


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=build.__doc__)
    ap.add_argument("--out", type=Path, default=build.HTML, help="folder of the built site")
    ap.add_argument("--no-strict", action="store_true", help="do not fail on Sphinx warnings")
    ap.add_argument("--check", action="store_true", help="then check it in headless Chromium")
    ap.add_argument("--shots", type=Path, default=None, help="with --check: save screenshots here")
    args = ap.parse_args(argv)
    built = build.build(args.out, strict=not args.no_strict)
    print(f"[book] open {built.html / 'index.html'}")
    if args.check:
        from hba_lib.book import check

        problems = check.check_site(built.html, shots=args.shots)
        for p in problems:
            print(f"[book] PROBLEM {p}")
        print(f"[book] browser check: {len(problems)} problems")
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
