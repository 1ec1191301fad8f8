from __future__ import annotations

from trionet.core.ratelimit import FloodGate, KeyedLimiter, TokenBucket, Verdict


def test_burst_then_refuse_then_refill() -> None:
    bucket = TokenBucket(10, 20, now=0.0)
    assert all(bucket.take(0.0) for _ in range(20))
    assert not bucket.take(0.0)
    assert bucket.take(0.1)  # one token back after 0.1 s at 10/s
    assert not bucket.take(0.1)


def test_zero_rate_is_unlimited() -> None:
    bucket = TokenBucket(0, 0, now=0.0)
    assert all(bucket.take(0.0) for _ in range(10_000))


# KeyedLimiter


def test_keyed_limiter_refuses_past_the_rate_with_a_wait_and_keeps_keys_apart() -> None:
    limiter = KeyedLimiter(per_minute=10)
    assert all(limiter.take("a", 0.0) is None for _ in range(10))
    wait = limiter.take("a", 0.0)
    assert wait is not None and 1 <= wait <= 6  # one token every 6 s
    assert limiter.take("b", 0.0) is None
    assert limiter.take("a", 6.0) is None


def test_keyed_limiter_zero_is_off() -> None:
    limiter = KeyedLimiter(per_minute=0)
    assert all(limiter.take("a", 0.0) is None for _ in range(1000))
    assert len(limiter) == 0


def test_keyed_limiter_forgets_idle_keys() -> None:
    limiter = KeyedLimiter(per_minute=60)
    for i in range(5000):
        limiter.take(i, float(i) / 100)  # 100 new keys a second, each idle afterwards
    assert len(limiter) < 2100  # swept whenever the table doubles


# FloodGate


def test_flood_gate_accepts_the_rate_and_answers_a_burst_of_refusals() -> None:
    gate = FloodGate(5, 0.0)
    verdicts = [gate.admit(0.0) for _ in range(30)]
    assert verdicts[:10] == [Verdict.ACCEPT] * 10
    assert verdicts[10:20] == [Verdict.REFUSE] * 10
    assert set(verdicts[20:]) == {Verdict.REFUSE_SILENTLY}


def test_flood_gate_closes_after_sustained_flooding_though_tokens_refill() -> None:
    """The old limiter let every refilled token reset its abuse timer: it never closed."""
    gate = FloodGate(5, 0.0, abuse_seconds=10)
    t, verdicts = 0.0, []
    while t < 12:
        verdicts.append((t, gate.admit(t)))
        t += 0.001  # 1,000 frames a second against a limit of 5
    closed = [at for at, v in verdicts if v is Verdict.CLOSE]
    assert closed and 10 <= closed[0] < 11.5
    answered = [at for at, v in verdicts if v is Verdict.REFUSE and at > 1]
    assert len(answered) <= 12  # about one answer a second while flooding


def test_flood_gate_forgives_a_client_that_slows_down() -> None:
    gate = FloodGate(5, 0.0, abuse_seconds=3)
    for i in range(2000):  # flood for 2 s
        gate.admit(i / 1000)
    t = 2.0
    verdicts = []
    while t < 10:  # then 4 frames a second: within the rate
        verdicts.append(gate.admit(t))
        t += 0.25
    assert Verdict.CLOSE not in verdicts
    assert verdicts[-8:] == [Verdict.ACCEPT] * 8


def test_flood_gate_rate_zero_is_off() -> None:
    gate = FloodGate(0, 0.0)
    assert all(gate.admit(0.0) is Verdict.ACCEPT for _ in range(10_000))
