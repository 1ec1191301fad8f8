"""Prometheus metrics, one registry per app (so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]


class Metrics:
    """Every metric trionet exports at ``GET /metrics``."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.connections = Gauge("trionet_connections", "Open WebSocket connections", registry=r)
        self.node = Gauge("trionet_node", "This process's node name (label): always 1",
                          ["node"], registry=r)
        self.online_users = Gauge("trionet_online_users", "Users with a connection", registry=r)
        self.direct_connections = Gauge(
            "trionet_direct_transport_connections",
            "Open WebSocket connections whose frames are written straight to the socket",
            registry=r,
        )
        self.frames_in = Counter(
            "trionet_frames_in", "Client frames received, by type", ["type"], registry=r
        )
        self.frames_out = Counter(
            "trionet_frames_out", "Frames routed to clients, by type", ["type"], registry=r
        )
        self.deliveries = Counter(
            "trionet_deliveries", "Frames handed to a connection (queued or written through)",
            registry=r,
        )
        self.written_through = Counter(
            "trionet_deliveries_written_through",
            "Frames written to a connection's socket by the task that routed them (its writer"
            " was idle), without queueing", registry=r,
        )
        self.errors = Counter("trionet_frame_errors", "Error frames sent, by code", ["code"],
                              registry=r)
        self.control_dropped = Counter(
            "trionet_control_events_dropped",
            "Control events (presence, membership) dropped: the manager's queue was full",
            registry=r,
        )
        self.slow_consumers = Counter(
            "trionet_slow_consumer_closes", "Connections closed as slow consumers", registry=r
        )
        self.rate_limited = Counter(
            "trionet_rate_limited_frames", "Frames refused by the rate limit", registry=r
        )
        self.limited = Counter(
            "trionet_limited_requests",
            "HTTP requests and WebSocket handshakes refused by an abuse limit, by limit",
            ["limit"], registry=r,
        )
        self.batch_size = Histogram(
            "trionet_persist_batch_size", "Records per commit",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000), registry=r,
        )
        self.commit_seconds = Histogram(
            "trionet_commit_seconds", "Commit latency",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.persist_failures = Counter(
            "trionet_persist_failures", "Commits that failed or timed out", registry=r
        )
        self.retry_depth = Gauge(
            "trionet_retry_buffer_depth", "Records waiting to be written again", registry=r
        )
        self.replays = Counter("trionet_replays", "Resume replays served", registry=r)
        self.replay_buffered_bytes = Gauge(
            "trionet_replay_buffered_bytes",
            "Bytes of replay frames read from the store and not yet written to their sockets",
            registry=r,
        )
        self.trio_tasks = Gauge(
            "trionet_trio_tasks", "Live trio tasks in the process (counted at each scrape)",
            registry=r,
        )

    def render(self) -> bytes:
        """The exposition text."""
        data: bytes = generate_latest(self.registry)
        return data
