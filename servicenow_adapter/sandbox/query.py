"""The sandbox's reading of ServiceNow encoded queries (``sysparm_query``).

Grammar (ServiceNow docs, "Encoded query strings" and "Operators available for filters
and queries"): ``<field><operator><value>`` terms joined by ``^`` (AND), ``^OR`` (OR with
the previous term), ``^NQ`` (a new OR'ed block), plus ``ORDERBY<field>`` and
``ORDERBYDESC<field>`` terms. Field names, operators and values are case-sensitive.

What the sandbox does, like an instance:

* a term naming a field the table does not have is **dropped**, not rejected, so a
  typo widens the query (the documented default of ``glide.invalid_query.returns_no_rows``);
* one level of dot-walking through a reference field (``caller_id.user_name=beth.anglin``);
* a few ``javascript:gs.*`` date helpers (``nowDateTime``, ``beginningOfToday``,
  ``minutesAgoStart(n)``, ``hoursAgoStart(n)``, ``daysAgoStart(n)``), in UTC; any other
  script value drops the term (guarded-script behaviour, simplified).

``^^`` inside a term stands for one literal ``^`` in the value. ServiceNow documents no
escape for ``^`` in REST queries; this is the convention our client and the sandbox
share (``servicenow_adapter.query.escape_value``), and our client also re-checks every
row it gets back, so a real instance reading it differently cannot widen a lookup.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

# Longest first, so that NOT LIKE wins over LIKE and >= over >.
OPERATORS = (
    "ISNOTEMPTY",
    "EMPTYSTRING",
    "STARTSWITH",
    "ENDSWITH",
    "NOT LIKE",
    "NOTLIKE",
    "NOT IN",
    "NSAMEAS",
    "ISEMPTY",
    "ANYTHING",
    "BETWEEN",
    "SAMEAS",
    "LIKE",
    "IN",
    "!=",
    ">=",
    "<=",
    "=",
    ">",
    "<",
)
_NO_VALUE = {"ISEMPTY", "ISNOTEMPTY", "EMPTYSTRING", "ANYTHING"}
_FIELD = re.compile(r"[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?")
_JS = re.compile(r"javascript:\s*gs\.(\w+)\(\s*(\d*)\s*\)\s*;?\s*$")


@dataclass
class Condition:
    """One ``<field><operator><value>`` term."""

    field: str
    op: str
    value: str


@dataclass
class Query:
    """A parsed encoded query.

    ``groups`` is a list of ``^NQ`` blocks (OR'ed); each block is a list of clauses
    (AND'ed); each clause is a list of conditions (OR'ed with ``^OR``).
    ``order`` is a list of ``(field, descending)``; ``dropped`` the terms ignored.
    """

    groups: list[list[list[Condition]]] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def split_terms(text: str) -> list[str]:
    """Split an encoded query on ``^``, reading ``^^`` as a literal caret inside a term.

    Returns the raw terms, separators' ``OR``/``NQ`` prefixes kept on the term that follows.
    """
    terms, current, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "^":
            if i + 1 < len(text) and text[i + 1] == "^":
                current.append("^")
                i += 2
                continue
            terms.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    terms.append("".join(current))
    return terms


def _parse_condition(term: str) -> Condition | None:
    match = _FIELD.match(term)
    if not match:
        return None
    name, rest = match.group(0), term[match.end() :]
    for op in OPERATORS:
        if rest.startswith(op):
            value = rest[len(op) :]
            if op in _NO_VALUE and value:
                return None
            return Condition(name, op.replace("NOTLIKE", "NOT LIKE"), value)
    return None


def parse(text: str, known_field: Callable[[str], bool]) -> Query:
    """Parse ``text``; ``known_field(name)`` says whether a (dot-walked) field exists.

    Unknown fields and operators are dropped, as an instance does by default.
    """
    query = Query()
    block: list[list[Condition]] = []
    for raw in split_terms(text or ""):
        term = raw
        if not term or term == "EQ":
            continue
        if term.startswith("ORDERBYDESC"):
            name = term[len("ORDERBYDESC") :]
            if known_field(name):
                query.order.append((name, True))
            continue
        if term.startswith("ORDERBY"):
            name = term[len("ORDERBY") :]
            if known_field(name):
                query.order.append((name, False))
            continue
        joiner = "AND"
        if term.startswith("NQ"):
            if block:
                query.groups.append(block)
            block = []
            term = term[2:]
        elif term.startswith("OR"):
            joiner = "OR"
            term = term[2:]
        cond = _parse_condition(term)
        if cond is None or not known_field(cond.field):
            query.dropped.append(raw)
            continue
        if cond.value.startswith("javascript:"):
            resolved = resolve_script(cond.value)
            if resolved is None:
                query.dropped.append(raw)
                continue
            cond.value = resolved
        if joiner == "OR" and block:
            block[-1].append(cond)
        else:
            block.append([cond])
    if block:
        query.groups.append(block)
    return query


def resolve_script(value: str, now: datetime | None = None) -> str | None:
    """Evaluate the few ``javascript:gs.*`` date helpers the sandbox knows, in UTC."""
    match = _JS.match(value)
    if not match:
        return None
    now = now or datetime.now(UTC)
    name, arg = match.group(1), int(match.group(2) or 0)
    start_of_day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    table = {
        "nowDateTime": now,
        "beginningOfToday": start_of_day,
        "minutesAgoStart": (now - timedelta(minutes=arg)).replace(second=0),
        "hoursAgoStart": (now - timedelta(hours=arg)).replace(minute=0, second=0),
        "daysAgoStart": start_of_day - timedelta(days=arg),
    }
    if name not in table:
        return None
    return table[name].strftime("%Y-%m-%d %H:%M:%S")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def compare_key(value: str):
    """Sort key: numbers numerically (before text), everything else as text."""
    num = _number(value) if value else None
    return (0, num, "") if num is not None else (1, 0.0, value)


def _cmp(a: str, b: str) -> int:
    na, nb = _number(a), _number(b)
    if na is not None and nb is not None:
        return (na > nb) - (na < nb)
    return (a > b) - (a < b)


def matches(cond: Condition, actual: str | None) -> bool:
    """Whether a field's raw string value ``actual`` (None: missing) satisfies ``cond``."""
    v = actual or ""
    op, want = cond.op, cond.value
    if op == "=":
        return v == want
    if op == "!=":
        return v != want
    if op in (">", ">=", "<", "<="):
        if v == "":
            return False
        c = _cmp(v, want)
        return {">": c > 0, ">=": c >= 0, "<": c < 0, "<=": c <= 0}[op]
    if op == "LIKE":
        return want.lower() in v.lower()
    if op == "NOT LIKE":
        return want.lower() not in v.lower()
    if op == "STARTSWITH":
        return v.lower().startswith(want.lower())
    if op == "ENDSWITH":
        return v.lower().endswith(want.lower())
    if op == "IN":
        return v in want.split(",")
    if op == "NOT IN":
        return v not in want.split(",")
    if op == "ISEMPTY":
        return v == ""
    if op in ("ISNOTEMPTY",):
        return v != ""
    if op == "EMPTYSTRING":
        return v == ""
    if op == "ANYTHING":
        return True
    if op == "BETWEEN":
        low, _, high = want.partition("@")
        return v != "" and _cmp(v, low) >= 0 and _cmp(v, high) <= 0
    return False


def evaluate(query: Query, get: Callable[[str], str | None]) -> bool:
    """Whether a row matches. ``get(field)`` returns the row's raw value of a (dot-walked) field.

    ``SAMEAS``/``NSAMEAS`` compare with another field of the same row named by the value.
    An empty query matches everything.
    """
    if not query.groups:
        return True
    for block in query.groups:
        ok = True
        for clause in block:
            hit = False
            for cond in clause:
                if cond.op in ("SAMEAS", "NSAMEAS"):
                    same = (get(cond.field) or "") == (get(cond.value) or "")
                    hit = same if cond.op == "SAMEAS" else not same
                else:
                    hit = matches(cond, get(cond.field))
                if hit:
                    break
            if not hit:
                ok = False
                break
        if ok:
            return True
    return False
