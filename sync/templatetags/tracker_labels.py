"""Template words from the tracker plug: what an entity is called on this node and on another.

``{% load tracker_labels %}`` then ``{% local_entity_label %}`` (this node's tracker:
``incident`` on ServiceNow, ``issue`` on a tracker of issues) and ``{{ connection.remote_tracker|entity_label_of }}``
(the remote node's tracker, by its registered name; ``entity`` when none is installed for it).
"""

from __future__ import annotations

from django import template

from connections.selectors import tracker_adapter_class_get
from trackers.errors import TrackerError
from trackers.registry import adapter_class

register = template.Library()


@register.simple_tag
def local_entity_label() -> str:
    """What one entity is called on this node's tracker (``incident``, ``issue``)."""
    try:
        return tracker_adapter_class_get().entity_label
    except TrackerError:
        return "entity"


@register.filter
def entity_label_of(tracker: str) -> str:
    """What one entity is called on the tracker registered as ``tracker`` (``entity`` if unknown)."""
    try:
        return adapter_class(tracker or "").entity_label
    except TrackerError:
        return "entity"
