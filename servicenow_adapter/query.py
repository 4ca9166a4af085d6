"""Building ServiceNow encoded queries (``sysparm_query``) from values that may be user text.

Rules (reference: ServiceNow docs "Encoded query strings"; pitfalls seen in public clients):

* A value is escaped with :func:`escape_value`: each ``^`` is doubled, so user text such
  as ``x^NQactive=true`` cannot add terms. ServiceNow documents no escape for ``^``; the
  sandbox reads ``^^`` as a literal caret, and every lookup of ours re-checks the rows it
  gets back, so an instance that reads it differently can narrow a result but never widen it.
* ``&``, ``=``, ``%`` and non-ASCII text need nothing here: the whole query is one URL
  parameter, encoded once by ``requests``; and the first operator after the field name
  ends the field, so ``=`` inside a value is just text.
* ``IN`` lists cannot carry a comma inside one value: :func:`in_list` refuses them.
* Date-time literals are UTC ``YYYY-MM-DD HH:MM:SS`` (:func:`sn_datetime`), never
  ``javascript:`` helpers, which run in the API user's time zone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

FIELD = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$")
OPERATORS = {"=", "!=", ">", ">=", "<", "<=", "LIKE", "STARTSWITH", "ENDSWITH", "IN", "NOT IN"}


def escape_value(value: str) -> str:
    """Return ``value`` safe to place after an operator: ``^`` doubled, newlines kept."""
    return str(value).replace("^", "^^")


def term(field: str, op: str, value: str) -> str:
    """One ``<field><op><value>`` term with the value escaped. Raises ValueError for a bad field or operator."""
    if not FIELD.match(field):
        raise ValueError(f"{field!r} is not a field name")
    if op not in OPERATORS:
        raise ValueError(f"{op!r} is not a supported operator")
    return f"{field}{op}{escape_value(value)}"


def in_list(values: Iterable[str]) -> str:
    """A comma list for ``IN``; raises ValueError when a value holds a comma or is empty."""
    items = [str(v) for v in values]
    for item in items:
        if not item or "," in item:
            raise ValueError(f"{item!r} cannot be placed in an IN list")
    return ",".join(items)


def order_by(*fields: str) -> str:
    """``ORDERBYa^ORDERBYb`` for ascending order on ``fields``, in that priority."""
    for f in fields:
        if not FIELD.match(f):
            raise ValueError(f"{f!r} is not a field name")
    return "^".join(f"ORDERBY{f}" for f in fields)


def join(*parts: str) -> str:
    """AND together non-empty query parts."""
    return "^".join(p for p in parts if p)


def sn_datetime(moment: datetime) -> str:
    """A UTC ``YYYY-MM-DD HH:MM:SS`` literal; naive datetimes are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
