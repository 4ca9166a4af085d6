"""The tracker plug: what the sync engine and the console know of a tracker, and nothing more.

``interface`` holds the adapter interface (:class:`~trackers.interface.TrackerAdapter`),
``errors`` its error types, ``replica`` the replica schema both nodes exchange, and
``registry`` finds the adapter class of a tracker from ``settings.TRACKER_ADAPTERS``.
An adapter app (``servicenow_adapter``) imports this package and nothing of the engine;
``sync`` and ``connections`` import this package and never an adapter.
"""
