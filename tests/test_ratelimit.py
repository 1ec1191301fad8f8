from __future__ import annotations

from trionet.ratelimit import TokenBucket


def test_burst_then_refuse_then_refill() -> None:
    bucket = TokenBucket(10, 20, now=0.0)
    assert all(bucket.take(0.0) for _ in range(20))
    assert not bucket.take(0.0)
    assert bucket.take(0.1)  # one token back after 0.1 s at 10/s
    assert not bucket.take(0.1)


def test_zero_rate_is_unlimited() -> None:
    bucket = TokenBucket(0, 0, now=0.0)
    assert all(bucket.take(0.0) for _ in range(10_000))
