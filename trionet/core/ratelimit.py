"""Rate limits (pure; the caller passes the clock).

- :class:`TokenBucket`: one bucket, ``rate`` tokens a second.
- :class:`KeyedLimiter`: a bucket per key (a client address, a user id), with memory bounded
  by the keys that were active recently.
- :class:`FloodGate`: a WebSocket connection's frame budget, which tells refused frames that
  deserve an answer from a flood that should be closed.
"""

from __future__ import annotations

import enum
import math

__all__ = ["FloodGate", "KeyedLimiter", "TokenBucket", "Verdict"]


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``; rate 0 means unlimited."""

    __slots__ = ("rate", "burst", "_tokens", "_at")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = now

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def take(self, now: float) -> bool:
        """Spend one token; False when none is left."""
        if self.rate <= 0:
            return True
        self._refill(now)
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def wait(self, now: float) -> float:
        """Seconds until a token is available (0 when one is now)."""
        if self.rate <= 0:
            return 0.0
        self._refill(now)
        return max(0.0, (1 - self._tokens) / self.rate)

    def full(self, now: float) -> bool:
        """True when the bucket has refilled completely (it then holds no information)."""
        self._refill(now)
        return self._tokens >= self.burst


class KeyedLimiter:
    """``per_minute`` events per key, in bursts of up to ``per_minute``; 0 means unlimited.

    Keys whose bucket has refilled are forgotten whenever the table doubles, so memory is
    bounded by the keys active within the last minute or so.
    """

    def __init__(self, per_minute: float) -> None:
        self.per_minute = per_minute
        self._buckets: dict[object, TokenBucket] = {}
        self._sweep_at = 1024

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def take(self, key: object, now: float) -> int | None:
        """Spend one event of ``key``: None when allowed, else whole seconds to wait."""
        if self.per_minute <= 0:
            return None
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._sweep_at:
                self._sweep(now)
            burst = max(1.0, self.per_minute)
            bucket = self._buckets[key] = TokenBucket(self.per_minute / 60, burst, now)
        if bucket.take(now):
            return None
        return max(1, math.ceil(bucket.wait(now)))

    def _sweep(self, now: float) -> None:
        for key in [k for k, b in self._buckets.items() if b.full(now)]:
            del self._buckets[key]
        self._sweep_at = max(1024, 2 * len(self._buckets))

    def __len__(self) -> int:
        return len(self._buckets)


class Verdict(enum.Enum):
    """What to do with one inbound frame."""

    ACCEPT = "accept"
    #: refuse it with a ``rate_limited`` error
    REFUSE = "refuse"
    #: refuse it without an answer (the connection was answered within the last second)
    REFUSE_SILENTLY = "refuse_silently"
    #: close the connection (1008): it has been flooding for ``abuse_seconds``
    CLOSE = "close"


class FloodGate:
    """Every inbound frame of a connection passes here, whatever it holds.

    Frames within ``rate`` per second (bursts of twice that) are accepted. Refused frames are
    answered, up to a burst's worth in any one second; past that, and for as long as the
    connection floods (every second more frames refused than accepted), one refusal a second
    is answered and the rest are dropped silently. After ``abuse_seconds`` of consecutive
    flooding seconds the verdict is :attr:`Verdict.CLOSE`. ``rate`` 0: no limit.
    """

    __slots__ = ("bucket", "abuse_seconds", "_window", "_accepted", "_refused",
                 "_flood_since", "_answered_at")

    def __init__(self, rate: float, now: float, *, abuse_seconds: float = 10.0) -> None:
        self.bucket = TokenBucket(rate, rate * 2, now)
        self.abuse_seconds = abuse_seconds
        self._window = now
        self._accepted = 0
        self._refused = 0
        self._flood_since: float | None = None
        self._answered_at = -math.inf

    @property
    def flooding(self) -> bool:
        return self._flood_since is not None or self._refused > self.bucket.burst

    def admit(self, now: float) -> Verdict:
        if self.bucket.rate <= 0:
            return Verdict.ACCEPT
        if now - self._window >= 1.0:
            if self._refused > self._accepted and now - self._window < 2.0:
                if self._flood_since is None:
                    self._flood_since = self._window
            else:  # a calm second, or a silent one in between: the flood is over
                self._flood_since = None
            self._window, self._accepted, self._refused = now, 0, 0
        if self.bucket.take(now):
            self._accepted += 1
            return Verdict.ACCEPT
        self._refused += 1
        if self._flood_since is not None and now - self._flood_since >= self.abuse_seconds:
            return Verdict.CLOSE
        if self.flooding and now - self._answered_at < 1.0:
            return Verdict.REFUSE_SILENTLY
        self._answered_at = now
        return Verdict.REFUSE
