"""trackers.throttle: the bucket, slot and AIMD maths on an injected clock, then the real thing:
four processes sharing Redis or the file store, and a 429 in one process holding another."""

from __future__ import annotations

import multiprocessing
import time
import uuid

import pytest
import requests

from trackers.errors import TransientTrackerError
from trackers.throttle import (
    CUT_GAP,
    MAX_BUSY_SECONDS,
    MIN_RATE,
    RECOVER_EVERY,
    InstanceBusy,
    Limits,
    Throttle,
    acquire_step,
    current_rate,
    too_fast_step,
)
from trackers.throttle_stores import FileStore, MemoryStore, RedisStore, store_for

X, Y = "https://x.service-now.com", "https://y.service-now.com"
REDIS_URL = "redis://127.0.0.1:6379/0"


class Clock:
    """An injected clock: ``sleep`` moves it on and records the pauses."""

    def __init__(self, now: float = 1_000_000.0):
        self.now, self.slept = now, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def throttle(clock: Clock, **limits) -> Throttle:
    return Throttle(MemoryStore(), limits=Limits(**limits), clock=clock, sleep=clock.sleep)


def step(state, limits, now, *, reserved=False, budget=60.0, lease="l", ttl=35.0):
    return acquire_step(
        state, limits, now, lease_id=lease, ttl=ttl, reserved=reserved, budget=budget
    )


# -- the maths ----------------------------------------------------------------------------------


def test_the_bucket_lets_a_burst_through_then_paces_at_the_rate():
    limits, state = Limits(max_concurrency=0, rate_per_second=10, burst=3), {}
    outcomes = [step(state, limits, 0.0, lease=str(i)) for i in range(5)]
    assert [d.outcome for d in outcomes] == ["granted"] * 3 + ["wait", "wait"]
    # Each caller reserved the next token: waits are 0.1 s apart, in arrival order.
    assert [round(d.seconds, 3) for d in outcomes[3:]] == [0.1, 0.2]
    assert all(d.reserved for d in outcomes)


def test_a_reserved_token_is_not_taken_twice():
    limits, state = Limits(max_concurrency=0, rate_per_second=10, burst=1), {}
    assert step(state, limits, 0.0).outcome == "granted"
    waiting = step(state, limits, 0.0, lease="b")
    assert waiting.outcome == "wait" and waiting.seconds == pytest.approx(0.1)
    assert step(state, limits, 0.1, lease="b", reserved=True).outcome == "granted"
    assert step(state, limits, 0.1, lease="c").seconds == pytest.approx(0.1)


def test_a_wait_beyond_the_budget_reserves_nothing():
    limits, state = Limits(max_concurrency=0, rate_per_second=1, burst=1), {}
    step(state, limits, 0.0)
    decision = step(state, limits, 0.0, lease="b", budget=0.5)
    assert decision.outcome == "too_long" and decision.seconds == pytest.approx(1.0)
    assert not decision.reserved
    assert step(state, limits, 1.0, lease="c").outcome == "granted"  # its token is still there


def test_at_most_the_limit_is_in_flight_and_a_lapsed_lease_frees_its_slot():
    limits, state = Limits(max_concurrency=2, rate_per_second=0), {}
    assert step(state, limits, 0.0, lease="a", ttl=10).outcome == "granted"
    assert step(state, limits, 0.0, lease="b", ttl=10).outcome == "granted"
    full = step(state, limits, 1.0, lease="c", ttl=10)
    assert full.outcome == "full" and full.in_flight == 2
    # Nobody released "a" (its worker was killed): it lapses at its expiry.
    assert step(state, limits, 10.5, lease="c", ttl=10, reserved=True).outcome == "granted"
    assert set(state["leases"]) == {"c"}


def test_a_429_without_retry_after_halves_the_rate_once_per_burst_and_it_grows_back():
    limits, state = Limits(rate_per_second=100, burst=100), {}
    too_fast_step(state, limits, 100.0, None)
    assert current_rate(state, limits, 100.0) == 50
    too_fast_step(state, limits, 100.0 + CUT_GAP / 2, None)  # the same burst of 429s
    assert current_rate(state, limits, 100.5) == 50
    assert state["tokens"] <= 0  # the burst allowance is gone too
    assert current_rate(state, limits, 100.0 + RECOVER_EVERY) == 55  # a twentieth of 100
    assert current_rate(state, limits, 100.0 + 5.5 * RECOVER_EVERY) == 75
    assert current_rate(state, limits, 100.0 + 1000) == 100  # never above the setting
    slow = Limits(rate_per_second=4, burst=4)  # a small setting still grows by 1 a second
    for i in range(30):
        too_fast_step(state, slow, 200.0 + CUT_GAP * i, None)
    assert current_rate(state, slow, 229.5) == pytest.approx(MIN_RATE, abs=0.01)


def test_a_429_with_retry_after_waits_and_leaves_the_rate_alone():
    limits, state = Limits(rate_per_second=100, burst=100), {}
    for i in range(10):  # ServiceNow says when: a rate cut on top would only slow recovery
        too_fast_step(state, limits, 100.0 + 2 * i, 1)
    assert current_rate(state, limits, 120.0) == 100
    assert state["busy_until"] == pytest.approx(119.0)


def test_retry_after_makes_every_caller_wait_and_is_never_shortened():
    limits, state = Limits(), {}
    too_fast_step(state, limits, 0.0, 30)
    too_fast_step(state, limits, 1.0, 2)
    busy = step(state, limits, 5.0)
    assert busy.outcome == "busy" and busy.seconds == pytest.approx(25)
    too_fast_step(state, limits, 6.0, 10**9)
    assert state["busy_until"] == 6.0 + MAX_BUSY_SECONDS


# -- the throttle with an injected clock --------------------------------------------------------


def test_acquire_sleeps_for_its_token_and_releases_its_slot():
    clock = Clock()
    t = throttle(clock, max_concurrency=1, rate_per_second=5, burst=1)
    with t.acquire(X, budget=10):
        assert t.snapshot(X)["in_flight"] == 1
    assert t.snapshot(X)["in_flight"] == 0
    with t.acquire(X, budget=10):
        pass
    assert clock.slept == [pytest.approx(0.2)]


def test_a_retry_after_beyond_the_budget_is_raised_at_once_with_its_wait():
    clock = Clock()
    t = throttle(clock)
    t.too_fast(X, 120)
    with pytest.raises(InstanceBusy) as caught:
        t.acquire(X, budget=5, label="ServiceNow", what="GET /api/now/table/incident")
    assert caught.value.status == 429 and caught.value.retry_after == pytest.approx(120)
    assert "ServiceNow at https://x.service-now.com asked to wait 120 s" in caught.value.message
    assert clock.slept == []


def test_a_short_retry_after_is_waited_out_unless_no_retry_is_left():
    clock = Clock()
    t = throttle(clock)
    t.too_fast(X, 2)
    with pytest.raises(InstanceBusy):
        t.acquire(X, budget=60, busy_budget=0)
    with t.acquire(X, budget=60):
        pass
    assert sum(clock.slept) == pytest.approx(2)


def test_a_caller_that_finds_every_slot_taken_gives_up_at_its_budget():
    clock = Clock()
    t = throttle(clock, max_concurrency=1, rate_per_second=0)
    held = t.acquire(X, budget=1)
    with pytest.raises(InstanceBusy) as caught:
        t.acquire(X, budget=1, label="Jira", what="GET /rest/api/3/issue/1")
    assert "already has 1 requests in flight" in caught.value.message
    assert caught.value.status is None and caught.value.retry_after
    assert 1 <= sum(clock.slept) < 1.2
    held.release()
    held.release()  # twice is harmless
    assert t.snapshot(X)["in_flight"] == 0


def test_a_busy_instance_holds_nothing_of_another():
    clock = Clock()
    t = throttle(clock, max_concurrency=1, rate_per_second=1, burst=1)
    t.too_fast(X, 600)
    held_y = t.acquire(Y, budget=0)  # Y's own slot and token: X's state is not in the way
    with pytest.raises(InstanceBusy):
        t.acquire(X, budget=5)
    assert t.snapshot(Y)["in_flight"] == 1 and t.snapshot(X)["in_flight"] == 0
    held_y.release()
    assert clock.slept == []


def test_a_streamed_response_holds_its_slot_until_closed_and_renews_it():
    clock = Clock()
    t = throttle(clock, max_concurrency=1, rate_per_second=0)

    class Response:
        closed = False

        def iter_content(self, chunk_size=1):
            for chunk in (b"a", b"b", b"c"):
                clock.now += 20  # a slow stream: longer than half the lease's life
                yield chunk

        def close(self):
            self.closed = True

    response = Response()
    lease = t.acquire(X, budget=1, ttl=30)
    lease.hold(response)
    assert b"".join(response.iter_content(1)) == b"abc"
    assert t.snapshot(X)["in_flight"] == 1  # 60 s later, still held: it was renewed
    response.close()
    assert response.closed and t.snapshot(X)["in_flight"] == 0


def test_when_the_shared_store_fails_the_process_goes_on_alone():
    class Broken:
        def transact(self, key, fn):
            raise OSError("disk full")

    clock = Clock()
    t = Throttle(Broken(), limits=Limits(), clock=clock, sleep=clock.sleep)
    t.mark(X, 5)
    assert t.remaining(X) == pytest.approx(5)
    t.clear(X)
    assert t.remaining(X) == 0


def test_a_store_url_that_is_none_of_the_three_is_refused():
    assert isinstance(store_for("memory://"), MemoryStore)
    with pytest.raises(ValueError, match="TRACKER_THROTTLE_URL"):
        store_for("ftp://somewhere")


def test_the_busy_gate_names_still_work(tmp_path):
    from servicenow_adapter import busy

    gate = busy.BusyGate(f"file://{tmp_path}")
    gate.mark(X, 30)
    assert 29 < busy.BusyGate(FileStore(tmp_path)).remaining(X) <= 30  # a fresh gate sees it
    gate.clear(X)
    assert gate.remaining(X) == 0


# -- the real thing: processes sharing Redis or the file store ---------------------------------


def _redis_or_skip() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("no Redis at 127.0.0.1:6379")
    return REDIS_URL


@pytest.fixture(params=["redis", "file"])
def shared_store(request, tmp_path):
    """(kind, spec): a Redis key prefix of its own, or a fresh directory."""
    if request.param == "redis":
        _redis_or_skip()
        prefix = f"test-throttle-{uuid.uuid4().hex}:"
        yield ("redis", prefix)
        store = RedisStore(REDIS_URL, prefix=prefix)
        for key in store.redis.scan_iter(prefix + "*"):
            store.redis.delete(key)
    else:
        yield ("file", str(tmp_path / "throttle"))


@pytest.mark.parametrize(
    "limits",
    [Limits(2, 10.0, 3), Limits(0, 5.0, 1), Limits(3, 0.0, 1), Limits(1, 2.5, 2)],
)
def test_the_redis_script_decides_as_the_python_reference_does(limits):
    """throttle_stores._STEP mirrors acquire_step/release_step: same cases, same answers."""
    from trackers.throttle import _acquire_args, _decision, release_step

    _redis_or_skip()
    store = RedisStore(REDIS_URL, prefix=f"test-throttle-{uuid.uuid4().hex}:")
    reference: dict = {}
    t0 = 1_800_000_000.0
    cases = [(0.0, "a", False, 60), (0.0, "b", False, 60), (0.0, "c", False, 60),
             (0.0, "d", False, 0.05), (0.05, "c", True, 60), (0.3, "e", False, 60),
             ("release", "a"), (0.31, "e", True, 60), (0.5, "f", False, 60),
             ("429", 0.6), (0.7, "g", False, 60), (12.0, "g", True, 60),
             ("release", "b"), ("release", "zz"), (40.0, "h", False, 60), (40.0, "i", True, 60)]  # fmt: skip
    try:
        for case in cases:
            if case[0] == "release":
                release_step(reference, case[1])
                store.native("k", "release", [case[1]])
                continue
            if case[0] == "429":
                too_fast_step(reference, limits, t0 + case[1], 0.5)
                store.transact("k", lambda s, n=t0 + case[1]: too_fast_step(s, limits, n, 0.5))
                continue
            now, lease, reserved, budget = case
            expected = step(reference, limits, t0 + now, lease=lease, reserved=reserved,
                            budget=budget, ttl=30.0)  # fmt: skip
            got = _decision(store.native("k", "acquire", _acquire_args(
                limits, t0 + now, lease, 30.0, reserved, budget)))  # fmt: skip
            assert got.outcome == expected.outcome, case
            assert got.seconds == pytest.approx(expected.seconds, abs=1e-3), case
            assert (got.reserved, got.in_flight) == (expected.reserved, expected.in_flight), case
            assert got.rate == pytest.approx(expected.rate), case
    finally:
        store.redis.delete(store.prefix + "k")


def _make_store(spec):
    kind, where = spec
    return RedisStore(REDIS_URL, prefix=where) if kind == "redis" else FileStore(where)


def _worker(spec, limits, count, results):
    t = Throttle(_make_store(spec), limits=limits)
    spans = []
    for _ in range(count):
        with t.acquire(X, budget=30, ttl=10):
            started = time.time()
            time.sleep(0.01)  # the request
            spans.append((started, time.time()))
    results.put(spans)


def test_four_processes_keep_to_the_limit_and_the_rate_together(shared_store):
    limits = Limits(max_concurrency=2, rate_per_second=40, burst=4)
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(shared_store, limits, 12, results)) for _ in range(4)
    ]
    for w in workers:
        w.start()
    spans = [span for _ in workers for span in results.get(timeout=60)]
    for w in workers:
        w.join(10)
    assert len(spans) == 48
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    in_flight = peak = 0
    for _, change in events:
        in_flight += change
        peak = max(peak, in_flight)
    assert peak <= limits.max_concurrency
    # Token-bucket conformance: between any two starts, at most burst + rate × elapsed (+1 for
    # the first itself) requests began, whichever process sent them.
    # (+3: a process may be scheduled late after its grant, then start with the next ones).
    starts = sorted(s for s, _ in spans)
    for i in range(len(starts)):
        for j in range(i + 1, len(starts)):
            allowed = limits.burst + limits.rate_per_second * (starts[j] - starts[i]) + 3
            assert j - i + 1 <= allowed, (i, j, starts[j] - starts[i])
    # Unpaced, two slots of 10 ms would send the 48 in a quarter of a second.
    assert starts[-1] - starts[0] >= 0.9 * (48 - limits.burst) / limits.rate_per_second


def _lapsing_worker(spec, ready):
    t = Throttle(_make_store(spec), limits=Limits(max_concurrency=1, rate_per_second=0))
    t.acquire(X, budget=5, ttl=3.0)  # never released: the process is killed
    ready.set()
    time.sleep(60)


def test_the_slot_of_a_killed_worker_lapses(shared_store):
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    victim = ctx.Process(target=_lapsing_worker, args=(shared_store, ready))
    victim.start()
    assert ready.wait(20)
    victim.kill()
    victim.join(10)
    t = Throttle(_make_store(shared_store), limits=Limits(max_concurrency=1, rate_per_second=0))
    started = time.monotonic()
    with pytest.raises(InstanceBusy):
        t.acquire(X, budget=0.2)
    with t.acquire(X, budget=10):
        assert time.monotonic() - started < 6


# -- the ServiceNow client: a 429 in one process, a wait in another ----------------------------


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    from tests.live import LiveSandbox

    sb = LiveSandbox(tmp_path_factory.mktemp("sn-throttle"), seed="demo").start()
    yield sb
    sb.stop()


def _client(sandbox, spec, **kw):
    from servicenow_adapter.client import BasicCredentials, RetryPolicy, ServiceNowClient

    creds = BasicCredentials(username=sandbox.user, password=sandbox.password)
    t = Throttle(_make_store(spec), limits=Limits())
    retry = kw.pop("retry", RetryPolicy(max_attempts=3, max_total_seconds=10, base_delay=0.01))
    return ServiceNowClient(sandbox.url, credentials=creds, retry=retry, throttle=t, **kw)


def _second_client(sandbox, spec, results):
    c = _client(sandbox, spec)
    started = time.monotonic()
    rows = c.table_page("incident", query="", fields=("sys_id",), limit=1).rows
    results.put((time.monotonic() - started, c.calls, len(rows)))


@pytest.mark.integration
def test_a_429_with_retry_after_makes_a_client_in_another_process_wait(sandbox, shared_store):
    from trackers.http import NO_RETRY

    requests.delete(f"{sandbox.url}/sandbox/stats", timeout=5)
    requests.post(f"{sandbox.url}/sandbox/faults",
                  json={"status": 429, "retry_after": 2, "count": 1}, timeout=5)  # fmt: skip
    try:
        with pytest.raises(TransientTrackerError) as caught:  # the instance's own 429
            _client(sandbox, shared_store, retry=NO_RETRY).table_page("incident", query="", limit=1)
        assert caught.value.status == 429
        ctx = multiprocessing.get_context("fork")
        results = ctx.Queue()
        other = ctx.Process(target=_second_client, args=(sandbox, shared_store, results))
        other.start()
        waited, calls, rows = results.get(timeout=30)
        other.join(10)
        assert 1.5 <= waited < 5 and calls == 1 and rows == 1
        stats = requests.get(f"{sandbox.url}/sandbox/stats", timeout=5).json()
        assert stats.get("total") == 2  # the 429, then the other process's one call
    finally:
        requests.delete(f"{sandbox.url}/sandbox/faults", timeout=5)


@pytest.mark.integration
def test_an_attachment_download_holds_its_slot_until_the_stream_is_closed(sandbox, tmp_path):
    c = _client(sandbox, ("file", str(tmp_path)))
    sys_id = c.table_create("incident", {"short_description": "Streamed under a lease"})["sys_id"]
    meta = c.attachment_upload(table_name="incident", table_sys_id=sys_id, file_name="a.bin",
                               content_type="application/octet-stream",
                               chunks=[b"x" * 200_000])  # fmt: skip
    chunks = c.attachment_download(meta["sys_id"], chunk_size=65536)
    first = next(chunks)
    assert c.throttle.snapshot(sandbox.url)["in_flight"] == 1
    assert len(first) + sum(len(chunk) for chunk in chunks) == 200_000
    assert c.throttle.snapshot(sandbox.url)["in_flight"] == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [("TRACKER_THROTTLE_URL", "ftp://somewhere"), ("TRACKER_RATE_PER_SECOND", "-1")],
)
def test_a_bad_throttle_setting_stops_start_up_naming_it(name, value, tmp_path):
    import os
    import subprocess
    import sys

    from tests.live import ROOT

    env = {**os.environ, "EXALATE_VAR_DIR": str(tmp_path / "var"), name: value}
    env.pop("DATABASE_URL", None)
    done = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode != 0 and name in done.stderr
