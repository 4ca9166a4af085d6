"""Reading a Bulk Connect CSV: local number ↔ remote key pairs, every bad row with its reason (issue 13).

The file (what a spreadsheet saves as "CSV UTF-8"): one pair per line, two values, comma,
semicolon or tab separated (one separator for the whole file), an optional header line
(``local,remote`` or any first line whose first value is not a key). Refused as a whole,
before anything is linked: an empty file, a file that is not UTF-8, a header without
rows, more than :data:`MAX_ROWS` rows or :data:`MAX_BYTES` bytes, separators mixed
between lines. Row by row: a malformed line, a key that cannot be one, a duplicate of an
earlier line (same local number or same remote key) are bad rows with their reason.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

from .base import SyncRefused

MAX_ROWS = 10_000
MAX_BYTES = 2_000_000
SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab"}
KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_HEADER_WORDS = re.compile(r"local|remote|number|key|source|target|incident|issue", re.I)


@dataclass(frozen=True)
class CsvRow:
    """One data line: ``line`` (1-based, as an editor shows it), the two keys, and ``problem``
    ('' for a row that may be linked)."""

    line: int
    local_key: str
    remote_key: str
    problem: str = ""


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SyncRefused(
            f"The file is not UTF-8 text (byte 0x{data[exc.start]:02x} at position {exc.start:,} "
            'cannot be read). Save it as "CSV UTF-8" and upload it again.'
        ) from None
    if "\x00" in text:
        raise SyncRefused("The file holds binary data, not CSV text.")
    return text


def _separator(lines: list[tuple[int, str]]) -> str:
    used: dict[str, int] = {}
    for number, line in lines:
        present = [s for s in SEPARATORS if s in line]
        for s in present:
            used.setdefault(s, number)
    if len(used) > 1:
        (a, la), (b, lb) = sorted(used.items(), key=lambda kv: kv[1])[:2]
        raise SyncRefused(
            f"The file mixes separators: line {la} uses a {SEPARATORS[a]} and line {lb} a "
            f"{SEPARATORS[b]}. Use one separator for every line (a comma, or a semicolon)."
        )
    return next(iter(used), ",")


def parse_pairs(data: bytes, *, local_problem=None) -> list[CsvRow]:
    """Every data row of a Bulk Connect file, each with its problem ('' when good).

    ``local_problem(key)`` is the tracker's key check (``TrackerAdapter.key_problem``).
    Raises SyncRefused for a file that cannot be used at all (see the module docstring).
    """
    if len(data) > MAX_BYTES:
        raise SyncRefused(
            f"The file has {len(data):,} bytes; Bulk Connect takes at most {MAX_BYTES:,} "
            f"bytes and {MAX_ROWS:,} rows per file. Split it and upload the parts one by one."
        )
    text = _decode(data)
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise SyncRefused(
            "The file is empty. Upload a CSV with one pair per line: local number, remote key "
            "(e.g. INC0010001,INC0020001)."
        )
    separator = _separator(lines)
    first = next(csv.reader([lines[0][1]], delimiter=separator), [""])
    head = (first[0] if first else "").strip()
    if _HEADER_WORDS.search(head) and not re.search(r"\d{3,}", head) or not KEY.match(head):
        lines = lines[1:]
        if not lines:
            raise SyncRefused(
                "The file has a header line but no rows: add one pair per line under it."
            )
    if len(lines) > MAX_ROWS:
        raise SyncRefused(
            f"The file has {len(lines):,} rows; Bulk Connect takes at most {MAX_ROWS:,} per file. "
            "Split it and upload the parts one by one."
        )
    rows: list[CsvRow] = []
    seen_local: dict[str, int] = {}
    seen_remote: dict[str, int] = {}
    reader = csv.reader(io.StringIO("\n".join(line for _, line in lines)), delimiter=separator)
    for (number, _), cells in zip(lines, reader, strict=False):
        values = [c.strip() for c in cells]
        while values and not values[-1]:
            values.pop()
        if len(values) != 2 or not all(values):
            rows.append(
                CsvRow(
                    number,
                    values[0][:255] if values else "",
                    values[1][:255] if len(values) > 1 else "",
                    f"Malformed line: expected 2 values (local number, remote key), found "
                    f"{len([v for v in values if v])}.",
                )
            )
            continue
        local, remote = values
        problem = ""
        local_check = local_problem(local) if local_problem else None
        if local_check or not KEY.match(local):
            problem = f"'{local[:64]}' is not a local number: {local_check or 'letters, digits, - _ . only'}"
        elif not KEY.match(remote):
            problem = f"'{remote[:64]}' cannot be a remote key (letters, digits, '-', '_' or '.', at most 64)."
        elif local.upper() in seen_local:
            problem = f"Duplicate row: local number {local} is already on line {seen_local[local.upper()]}."
        elif remote.upper() in seen_remote:
            problem = f"Duplicate row: remote key {remote} is already on line {seen_remote[remote.upper()]}."
        if not problem:
            seen_local[local.upper()] = number
            seen_remote[remote.upper()] = number
        rows.append(CsvRow(number, local[:255], remote[:255], problem))
    return rows
