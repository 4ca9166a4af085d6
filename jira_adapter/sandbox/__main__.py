"""``python -m jira_adapter.sandbox --port P --flavour cloud|dc --seed demo --db PATH``: the sandbox without Django."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli import add_arguments, check, serve


def main(argv: list[str] | None = None) -> int:
    """Parse the options and serve until stopped; 2 for a bad option."""
    parser = argparse.ArgumentParser(
        prog="python -m jira_adapter.sandbox", description="A local Jira site."
    )
    add_arguments(parser)
    opts = vars(parser.parse_args(argv))
    if problem := check(opts):
        parser.error(problem)
    db = Path(opts["db"] or Path("var") / "jira_sandbox.sqlite3").resolve()
    serve(opts, db, lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
