"""The soak test at CI size (issue 11): N=100 incidents (``SOAK_N``) synced both ways with
comments and attachments on both sides while the sandboxes inject 10 % faults, each node's
workers are SIGKILLed three times and its scheduler once, the peer node is down for 60 s and
(on PostgreSQL, ``TEST_POSTGRES_URL``) the database restarts once. Every count must be 0.

Marked ``slow``: run with ``pytest -m slow tests/test_soak.py`` (``.ci/run`` does, against
PostgreSQL and Redis). ``make soak N=1000`` is the full-size run (``benchmarks/soak.py``).
"""

from __future__ import annotations

import os

import pytest

from tests.soak import Soak


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_soak_loses_and_doubles_nothing(tmp_path):
    n = int(os.environ.get("SOAK_N", "100"))
    soak = Soak(
        tmp_path,
        n=n,
        gap=float(os.environ.get("SOAK_GAP", "6")),
        drain_timeout=float(os.environ.get("SOAK_DRAIN_TIMEOUT", "600")),
        log=lambda text: print(text, flush=True),
    )
    try:
        result = soak.run()
    finally:
        soak.close()
    print(result.report())
    assert result.drain_seconds is not None, result.report()
    assert not any(result.counts.values()), result.report()
