"""The node's "busy until" for an instance: now part of :mod:`trackers.throttle`.

After a ``429`` with ``Retry-After`` every process of the node leaves the instance alone
until then (ServiceNow's rate-limit rules count per user and per hour, so one refused
request means all would be). The throttle keeps that time with the instance's
concurrency slots and token bucket, in Redis or under VAR_DIR (see its docstring); this
module keeps the names its users import: ``BusyGate`` (``mark``, ``remaining``,
``clear``) and ``SHARED``, the node's throttle.
"""

from __future__ import annotations

from trackers.throttle import MAX_BUSY_SECONDS, Throttle, node_throttle

__all__ = ["MAX_BUSY_SECONDS", "SHARED", "BusyGate"]

#: A gate reading the node's shared state (a fresh one sees what another process marked).
BusyGate = Throttle

#: The node's gate, used by clients built from the node's configuration.
SHARED = node_throttle()
