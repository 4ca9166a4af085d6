"""The node's own bookkeeping: heartbeats of its scheduler (beat) and workers."""

from django.db import models


class Heartbeat(models.Model):
    """The last sign of life of one process of this node, for ``/healthz``.

    ``name`` is ``beat`` for the scheduler (one per node) or ``worker:<celery hostname>``
    for each worker; ``at`` is when it last wrote (every ``HEARTBEAT_INTERVAL`` seconds);
    ``pid`` is its process id on its host (for an operator reading the row).
    """

    name = models.CharField(max_length=200, primary_key=True)
    at = models.DateTimeField()
    pid = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} at {self.at:%Y-%m-%d %H:%M:%S}"
