"""The ping-pong benchmark at test size (issue 14): N=6 incidents on SQLite, real nodes,
workers and sandboxes (``benchmarks/ping_pong.py``), asserting its correctness checks hold
after every phase (every mirror complete, no duplicate, no echo), never its timings.

Marked ``slow`` and ``integration``: run with ``pytest -m slow tests/test_ping_pong.py``.
``make bench-pingpong N=1000`` is the full-size run.
"""

from __future__ import annotations

import pytest

from benchmarks import ping_pong


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(900)
def test_ping_pong_phases_keep_every_mirror_complete_once():
    args = ping_pong.arguments(["--incidents", "6", "--backend", "sqlite"])
    results, failures = ping_pong.run_backend(args, "sqlite")
    print(ping_pong.table("SQLite", results))
    assert not failures, failures
    assert [r["phase"] for r in results] == [
        "exalate",
        "comment back",
        "description",
        "round trip",
        "unexalate",
    ]
