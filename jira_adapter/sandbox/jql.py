"""The JQL subset of the sandbox: what a change poll and a twin lookup need (reference note §2).

Clauses ``project``, ``key``/``issuekey`` (old keys of moved issues match too), ``id``,
``issuetype``/``type``, ``status``, ``summary ~``, ``created``/``updated`` and
``issue.property[key].path``; operators ``=``, ``!=``, ``>``, ``>=``, ``<``, ``<=``,
``~``, ``IN``, ``NOT IN``, ``IS [NOT] EMPTY``; ``AND``, ``OR``, ``NOT``, parentheses;
``ORDER BY f [ASC|DESC], …``. Date values: quoted or bare ``yyyy/MM/dd HH:mm``,
``yyyy-MM-dd HH:mm``, ``yyyy/MM/dd``, ``yyyy-MM-dd`` read **in the caller's time zone**,
a bare number as epoch milliseconds, ``-5m``/``-2h``/``-1d``/``-1w`` and ``now()``; every
date bound is **truncated to the minute** (§2.3). Errors are the 400 envelope with
Jira's wording. A :class:`Query` matches *snapshots* (dicts made by ``search_api``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from .wire import HttpError

_TOKEN = re.compile(
    r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<op>!=|>=|<=|!~|[=<>~(),])"""
    r"""|(?P<word>[\w.\-/:*+]+(?:\[[^\]]*\][\w.]*)?))"""
)
KEYWORDS = {"and", "or", "not", "in", "is", "empty", "null", "order", "by", "asc", "desc"}
FIELDS = {"project", "key", "issuekey", "id", "issuetype", "type", "status", "summary", "created",
          "createddate", "updated", "updateddate"}  # fmt: skip
DATE_FIELDS = {
    "created": "created",
    "createddate": "created",
    "updated": "updated",
    "updateddate": "updated",
}
ORDER_FIELDS = {"updated", "created", "key", "issuekey", "id", "project", "summary", "issuetype"}
_DATE_FORMATS = ("%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M", "%Y/%m/%d", "%Y-%m-%d")
_RELATIVE = re.compile(r"^([+-]?)(\d+)([mhdw])$")
_UNITS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def jql_error(message: str) -> HttpError:
    """A JQL error as a site answers it."""
    return HttpError(400, [message])


@dataclass
class Clause:
    """``field op values`` (``prop`` is ``(key, path)`` for ``issue.property[key].path``)."""

    field: str
    op: str
    values: list  # strings / numbers; ``None`` for EMPTY
    prop: tuple[str, list[str]] | None = None


@dataclass
class Node:
    """``AND`` / ``OR`` of its children, or ``NOT`` of one."""

    op: str  # "and" | "or" | "not"
    children: list = field(default_factory=list)


@dataclass
class Query:
    """A parsed JQL query: ``where`` (None when unbounded) and ``order`` [(field, descending)]."""

    where: Node | Clause | None
    order: list[tuple[str, bool]]
    text: str = ""


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                if not text[pos:].strip():
                    break
                raise jql_error(
                    f"Error in the JQL Query: The character '{text[pos:].strip()[0]}' is a reserved JQL character. (line 1, character {pos + 1})"
                )
            kind = m.lastgroup
            value = m.group(kind)
            if kind == "str":
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            self.tokens.append((kind, value))
            pos = m.end()
        self.i = 0

    def peek(self, lower: bool = True) -> str | None:
        if self.i >= len(self.tokens):
            return None
        kind, value = self.tokens[self.i]
        return value.lower() if lower and kind == "word" else value

    def take(self) -> tuple[str, str]:
        if self.i >= len(self.tokens):
            raise jql_error(
                f"Error in the JQL Query: Expecting either a value, list or function but got end of query. The invalid query was '{self.text}'."
            )
        self.i += 1
        return self.tokens[self.i - 1]

    def parse(self) -> Query:
        where = None
        if self.peek() not in (None, "order"):
            where = self.or_expr()
        order: list[tuple[str, bool]] = []
        if self.peek() == "order":
            self.take()
            if self.peek() != "by":
                raise jql_error("Error in the JQL Query: Expecting 'by' but got end of query.")
            self.take()
            while True:
                kind, name = self.take()
                if name.lower() not in ORDER_FIELDS:
                    raise jql_error(f"Not able to sort using field '{name}'.")
                desc = False
                if self.peek() in ("asc", "desc"):
                    desc = self.take()[1].lower() == "desc"
                order.append((name.lower(), desc))
                if self.peek() != ",":
                    break
                self.take()
        if self.peek() is not None:
            raise jql_error(
                f"Error in the JQL Query: Expecting operator but got '{self.peek(False)}'. The invalid query was '{self.text}'."
            )
        return Query(where, order, self.text)

    def or_expr(self):
        node = self.and_expr()
        while self.peek() == "or":
            self.take()
            node = Node("or", [node, self.and_expr()])
        return node

    def and_expr(self):
        node = self.not_expr()
        while self.peek() == "and":
            self.take()
            node = Node("and", [node, self.not_expr()])
        return node

    def not_expr(self):
        if self.peek() == "not":
            self.take()
            return Node("not", [self.not_expr()])
        if self.peek() == "(":
            self.take()
            node = self.or_expr()
            if self.peek() != ")":
                raise jql_error("Error in the JQL Query: Expecting ')' but got end of query.")
            self.take()
            return node
        return self.clause()

    def clause(self) -> Clause:
        kind, name = self.take()
        lname, prop = name.lower(), None
        m = re.match(r"^issue\.property\[([^\]]+)\]((?:\.\w+)*)$", name, re.I)
        if m:
            prop = (m.group(1), [p for p in m.group(2).split(".") if p])
        elif kind != "word" or lname not in FIELDS:
            raise jql_error(
                f"Field '{name}' does not exist or you do not have permission to view it."
            )
        op = self.take()[1].lower()
        if op == "not" and self.peek() == "in":
            self.take()
            op = "not in"
        elif op == "is":
            op = "is not" if self.peek() == "not" else "is"
            if op == "is not":
                self.take()
            if self.peek() not in ("empty", "null"):
                raise jql_error(f"Error in the JQL Query: Expecting 'EMPTY' after '{op.upper()}'.")
            self.take()
            return Clause(lname, op, [None], prop)
        if op not in ("=", "!=", ">", ">=", "<", "<=", "~", "!~", "in"):
            raise jql_error(
                f"Error in the JQL Query: Expecting operator but got '{op}'. The invalid query was '{self.text}'."
            )
        if op in ("in", "not in"):
            if self.peek() != "(":
                raise jql_error("Error in the JQL Query: Expecting '(' after 'IN'.")
            self.take()
            values = []
            while True:
                values.append(self.value())
                sep = self.take()[1]
                if sep == ")":
                    break
                if sep != ",":
                    raise jql_error("Error in the JQL Query: Expecting ',' or ')' in a list.")
            return Clause(lname, op, values, prop)
        return Clause(lname, op, [self.value()], prop)

    def value(self):
        kind, value = self.take()
        if kind == "op" and value in "(),":
            raise jql_error(
                f"Error in the JQL Query: Expecting either a value, list or function but got '{value}'."
            )
        if kind == "word" and self.peek() == "(":  # a function: now(), currentUser()
            self.take()
            if self.take()[1] != ")":
                raise jql_error("Error in the JQL Query: functions take no arguments here.")
            return ("fn", value.lower())
        return (kind, value)


def parse_jql(text: str) -> Query:
    """Parse ``text``; raises the 400 envelope for what a site would refuse."""
    return _Parser(text or "").parse()


def _date_bound(field: str, value, tz: str, now_ms: int) -> int:
    kind, raw = value
    if kind == "fn" and raw == "now":
        ms = now_ms
    elif kind == "word" and re.fullmatch(r"\d{9,}", raw):
        ms = int(raw)
    elif _RELATIVE.match(raw or ""):
        sign, amount, unit = _RELATIVE.match(raw).groups()
        ms = now_ms + (-1 if sign == "-" else 1) * int(amount) * _UNITS[unit]
    else:
        for fmt in _DATE_FORMATS:
            try:
                moment = datetime.strptime(raw, fmt).replace(tzinfo=ZoneInfo(tz))
                break
            except (ValueError, TypeError):
                continue
        else:
            raise jql_error(
                f"Date value '{raw}' for field '{field}' is invalid. Valid formats include: "
                "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period "
                "format e.g. '-5d', '4w 2d'."
            )
        ms = int(moment.timestamp() * 1000)
    return ms - ms % 60_000  # minute-granular


def _compare(op: str, left, right) -> bool:
    if op in ("=", "in"):
        return left == right
    if op in ("!=", "not in"):
        return left != right
    if left is None or right is None:
        return False
    try:
        return {">": left > right, ">=": left >= right, "<": left < right, "<=": left <= right}[op]
    except TypeError:
        return False


def _property(snapshot: dict, prop) -> object:
    value = snapshot["properties"].get(prop[0])
    for part in prop[1]:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def matches(node, snap: dict, *, tz: str, now_ms: int) -> bool:
    """Whether a snapshot satisfies the where-part (``node`` None matches everything)."""
    if node is None:
        return True
    if isinstance(node, Node):
        if node.op == "not":
            return not matches(node.children[0], snap, tz=tz, now_ms=now_ms)
        results = (matches(c, snap, tz=tz, now_ms=now_ms) for c in node.children)
        return all(results) if node.op == "and" else any(results)
    c = node
    if c.op in ("is", "is not"):
        value = _property(snap, c.prop) if c.prop else snap.get(c.field)
        empty = value in (None, "", [])
        return empty if c.op == "is" else not empty
    hits = []
    for value in c.values:
        kind, raw = value
        if c.prop:
            left = _property(snap, c.prop)
            right = raw if not isinstance(left, (int, float)) else _num(raw)
            hits.append(
                _compare(c.op, left if not isinstance(left, bool) else str(left).lower(), right)
            )
        elif c.field in DATE_FIELDS:
            bound = _date_bound(c.field, value, tz, now_ms)
            left = snap[DATE_FIELDS[c.field]]
            hits.append(
                left - left % 60_000 == bound
                if c.op in ("=", "in", "!=", "not in")
                else _compare(c.op, left, bound)
            )
            if c.op in ("!=", "not in"):
                hits[-1] = not hits[-1]
        elif c.field == "project":
            hits.append(
                _compare(
                    c.op,
                    True,
                    raw.upper() in (snap["project_key"], snap["project_id"])
                    or raw.lower() == snap["project_name"].lower(),
                )
            )
        elif c.field in ("key", "issuekey"):
            if c.op in ("=", "!=", "in", "not in"):
                hits.append(_compare(c.op, True, raw.upper() in snap["keys"]))
            else:
                hits.append(_compare(c.op, _key_order(snap["key"]), _key_order(raw.upper())))
        elif c.field == "id":
            hits.append(_compare(c.op, int(snap["id"]), _num(raw)))
        elif c.field in ("issuetype", "type"):
            hits.append(
                _compare(
                    c.op, True, raw.lower() in (snap["issuetype"].lower(), snap["issuetype_id"])
                )
            )
        elif c.field == "status":
            hits.append(_compare(c.op, True, raw.lower() == snap["status"].lower()))
        elif c.field == "summary":
            found = raw.lower().strip("*") in snap["summary"].lower()
            hits.append(
                found
                if c.op == "~"
                else not found
                if c.op == "!~"
                else _compare(c.op, snap["summary"], raw)
            )
    return all(hits) if c.op in ("!=", "not in") else any(hits)


def _num(raw):
    try:
        return int(raw)
    except (TypeError, ValueError):
        try:
            return float(raw)
        except (TypeError, ValueError):
            return raw


def _key_order(key: str) -> tuple[str, int]:
    project, _, number = key.rpartition("-")
    return (project, int(number) if number.isdigit() else 0)


def sort_key(snap: dict, name: str):
    """The value ``ORDER BY name`` sorts a snapshot by."""
    if name in ("key", "issuekey"):
        return _key_order(snap["key"])
    if name == "id":
        return int(snap["id"])
    if name == "project":
        return snap["project_key"]
    return snap.get(name) or ""


def check_values(query: Query, *, project_keys: set[str], known_keys: set[str]) -> None:
    """Jira refuses a query naming a project or an issue key that does not exist (visible to the caller)."""

    def walk(node):
        if isinstance(node, Node):
            for child in node.children:
                walk(child)
        elif isinstance(node, Clause) and not node.prop:
            for _kind, raw in node.values if node.op not in ("is", "is not") else []:
                if node.field == "project" and raw.upper() not in project_keys:
                    raise jql_error(f"The value '{raw}' does not exist for the field 'project'.")
                if (
                    node.field in ("key", "issuekey")
                    and node.op in ("=", "in")
                    and raw.upper() not in known_keys
                ):
                    raise jql_error(
                        f"An issue with key '{raw}' does not exist for field '{node.field}'."
                    )

    walk(query.where)
