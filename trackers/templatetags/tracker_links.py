"""Template filters for links that come from trackers or from another node.

``{% load tracker_links %}`` then ``{{ twin.remote_url|safe_href }}``: the URL itself when it
is an ``http://`` or ``https://`` URL with a host, else ``""`` -- so a template writes
``{% if twin.remote_url|safe_href %}<a href="{{ twin.remote_url|safe_href }}">…{% endif %}``
and a ``javascript:``, ``data:`` or relative value renders no link at all. The replica
schema already refuses such URLs on receipt (:data:`trackers.replica.HTTP_URL_PATTERN`);
this is the second check, at render time, for rows written before that check or by any
path that skipped it. Autoescaping still applies to what is returned.
"""

from django import template

from trackers.replica import is_http_url

register = template.Library()


@register.filter
def safe_href(value) -> str:
    """``value`` when it is an http(s) URL with a host (see :func:`trackers.replica.is_http_url`), else ``""``."""
    return value if is_http_url(value) else ""
