"""Checking an admin's encoded query (a trigger's **If**) before the instance sees it (issue 13).

An instance never refuses a bad term: it drops a term whose field or operator it does not
know and applies the rest, so ``priorty=1`` matches *every* incident
(``servicenow-api.md`` §1.3, "Invalid parts are dropped, not rejected"). So a trigger's
query is parsed here, term by term, and every problem is named in words:

* more than 4,000 characters (the query travels in the URL; instances answer long URLs
  with ``414 URI Too Long``, and the poll adds its own terms);
* a trailing ``^`` or an empty term (``a^^`` is a literal caret, ``a^`` is not);
* a ``javascript:`` value (run on the instance as the integration user);
* an operator that is not one of ServiceNow's filter operators listed in :data:`OPERATORS`;
* ``ORDERBY``, ``RLQUERY``, ``TEXTQUERY`` terms (no meaning for a trigger).

Fields are checked against the table by :mod:`servicenow_adapter.dictionary`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_QUERY_LENGTH = 4000
#: ServiceNow's filter operators a trigger may use (docs: "Operators available for filters
#: and queries"), longest first so that ``NOT LIKE`` wins over ``LIKE`` and ``>=`` over ``>``.
OPERATORS = (
    "ISNOTEMPTY", "EMPTYSTRING", "STARTSWITH", "ENDSWITH", "NOT LIKE", "NOTLIKE", "NOT IN",
    "NSAMEAS", "ISEMPTY", "ANYTHING", "BETWEEN", "SAMEAS", "LIKE", "IN", "!=", ">=", "<=",
    "=", ">", "<",
)  # fmt: skip
NO_VALUE = {"ISNOTEMPTY", "EMPTYSTRING", "ISEMPTY", "ANYTHING"}
_FIELD = re.compile(r"[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*")


@dataclass(frozen=True)
class Term:
    """One condition: ``raw`` (as typed, with its ``OR``/``NQ`` prefix), ``field``, ``op``, ``value``."""

    raw: str
    field: str
    op: str
    value: str


class QueryError(ValueError):
    """A query that must not be saved; ``str(exc)`` says which term and why."""


def split_terms(text: str) -> list[str]:
    """Split on ``^``, reading ``^^`` as a literal caret (the convention of ``query.escape_value``)."""
    terms, current, i = [], [], 0
    while i < len(text):
        if text[i] == "^":
            if text[i + 1 : i + 2] == "^":
                current.append("^")
                i += 2
                continue
            terms.append("".join(current))
            current = []
        else:
            current.append(text[i])
        i += 1
    terms.append("".join(current))
    return terms


def parse(text: str) -> list[Term]:
    """The conditions of ``text`` (may be empty). Raises QueryError naming the first bad term."""
    text = text or ""
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryError(
            f"The query has {len(text):,} characters; a trigger's query may have at most "
            f"{MAX_QUERY_LENGTH:,} (it travels in the URL, and an instance refuses long URLs "
            "with 414 URI Too Long). Narrow it, e.g. with fewer values in an IN list."
        )
    if not text.strip():
        return []
    terms = split_terms(text)
    if len(terms) > 1 and terms[-1] == "":
        raise QueryError(
            "The query ends with '^': remove it, or add the condition that should follow it."
        )
    out: list[Term] = []
    for position, raw in enumerate(terms, start=1):
        term = raw
        if raw.startswith(("ORDERBY", "RLQUERY", "ENDRLQUERY", "NQORDERBY")) or "TEXTQUERY" in raw:
            raise QueryError(
                f"'{raw}' has no meaning in a trigger (only conditions are allowed): remove it."
            )
        if term.startswith("NQ"):
            term = term[2:]
        elif term.startswith("OR") and position > 1:
            term = term[2:]
        if term == "EQ":
            continue
        if not term.strip():
            raise QueryError(
                f"Condition {position} is empty ('^^' is a literal caret; a lone '^' starts a "
                "condition): remove the extra '^'."
            )
        if "javascript:" in term.lower():
            raise QueryError(
                f"'{raw}' runs a script on the instance (javascript:); a trigger takes plain "
                "values only, e.g. sys_created_on>=2026-01-01 00:00:00 (UTC)."
            )
        match = _FIELD.match(term)
        if not match:
            raise QueryError(
                f"'{raw}' does not start with a field name (lower-case letters, digits and "
                "'_', e.g. priority or assignment_group.name)."
            )
        name, rest = match.group(0), term[match.end() :]
        op = next((o for o in OPERATORS if rest.startswith(o)), None)
        if op is None:
            shown = rest[:12] or "(nothing)"
            raise QueryError(
                f"'{raw}': '{shown}' after the field {name} is not a ServiceNow operator "
                "(use =, !=, <, <=, >, >=, LIKE, NOT LIKE, STARTSWITH, ENDSWITH, IN, NOT IN, "
                "ISEMPTY, ISNOTEMPTY, BETWEEN, SAMEAS, NSAMEAS)."
            )
        value = rest[len(op) :]
        if op in NO_VALUE and value:
            raise QueryError(f"'{raw}': {op} takes no value; remove '{value[:20]}'.")
        if op in ("SAMEAS", "NSAMEAS") and value and not _FIELD.fullmatch(value):
            raise QueryError(f"'{raw}': {op} compares with another field; '{value}' is not one.")
        out.append(Term(raw=raw, field=name, op=op.replace("NOTLIKE", "NOT LIKE"), value=value))
    return out


def and_each_block(query: str, extra: str) -> str:
    """``query`` AND ``extra`` in every ``^NQ`` block (``a^NQb`` ∧ t → ``a^t^NQb^t``).

    ``^OR`` binds to the term before it, so appending once is enough inside a block; but
    ``^NQ`` starts a new OR'ed block, which a single appended term would not cover.
    """
    if not (query or "").strip():
        return extra
    if not extra:
        return query
    blocks, current = [], []
    for raw in split_terms(query):
        if raw.startswith("NQ") and current:
            blocks.append(current)
            current = [raw[2:]]
        else:
            current.append(raw)
    blocks.append(current)
    escaped = ["^".join(t.replace("^", "^^") for t in b) for b in blocks]
    return "^NQ".join(f"{b}^{extra}" for b in escaped)
