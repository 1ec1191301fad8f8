"""The backplane interface: every fan-out and every control event passes it.

The central manager task of each node is its only caller. It publishes each committed batch
once (and each ephemeral send), as a list of :class:`~trionet.core.events.Delivery`, and
each control event; the backplane hands them to the :class:`BackplaneSink` of every node
whose connections they concern, its own included. Targets and events are plain data (see
:mod:`trionet.core.events`), so an implementation between processes serialises them with
:func:`~trionet.core.events.to_wire`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import trio

from ..core.events import ControlEvent, Delivery

__all__ = ["Backplane", "BackplaneSink"]


class BackplaneSink(Protocol):
    """What a node does with what reaches it (the fan-out of :mod:`trionet.realtime`)."""

    def deliver(self, batch: Sequence[Delivery]) -> int:
        """Queue each delivery to this node's connections it addresses; returns how many
        frames were queued. Never blocks."""
        ...

    def control(self, event: ControlEvent) -> int:
        """Apply a control event to this node; returns how many connections it closed."""
        ...


class Backplane(Protocol):
    """Carries deliveries and control events to every node (itself included)."""

    #: this node's id: the ``node`` of its connections' :class:`~trionet.core.routing.ConnRef`
    node: str
    #: False while the other nodes cannot be reached (``/readyz`` answers 503)
    ready: bool

    async def run(
        self, sink: BackplaneSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Hand what reaches this node to ``sink`` until cancelled; ``started`` once
        :meth:`publish` may be called."""
        ...

    async def publish(self, batch: Sequence[Delivery], *, stored: bool = False) -> int:
        """Send a batch, once, to the nodes it concerns; returns how many frames were queued
        to this node's own connections. ``stored``: the batch holds committed records (which
        a backplane must not lose silently; ephemeral frames it may)."""
        ...

    async def publish_control(self, event: ControlEvent) -> int:
        """Send a control event to every node; returns how many of this node's connections
        it closed."""
        ...

    def is_online(self, user_id: int) -> bool:
        """True while a node of the deployment holds a connection of the user."""
        ...

    async def flush(self) -> None:
        """Return once everything published so far has left this node (at a graceful stop;
        the caller bounds the wait)."""
        ...

    async def joined(self, user_id: int) -> None:
        """Return once whatever any node routes to the user from now on reaches this node's
        connections of them (called after registering one, before its replay)."""
        ...
