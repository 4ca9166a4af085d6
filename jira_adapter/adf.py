"""Atlassian Document Format (Jira Cloud REST v3 bodies): emit from blocks, validate, read text.

The emitter keeps to the rules of the ADF schema an integration meets (jira-api.md §5.2,
from Atlassian's ADF node/mark references and ``@atlaskit/adf-schema``): ``text`` never
empty; no mark twice on a node; ``code`` alone (Atlassian's own utility drops ``code``
combined with ``link``, so the link is kept as text after it); ``codeBlock`` holds one
unmarked text; a ``listItem`` starts with a paragraph; ``blockquote`` holds paragraphs,
lists and code blocks only; ``heading`` levels 1–6; table cells hold block content.
Mentions and inline images are written as text (``@Name``, ``[image: x]``): a mention
node would notify a Jira user chosen by name, and a media node needs a media-service id
that only Jira's editor obtains.
"""

from __future__ import annotations

from typing import Any

from .markup import Block, Cell, Inline, image_text, inline_text, mention_text

ADF_MARKS = ("strong", "em", "underline", "strike", "code", "sup", "sub", "link")
_TOP = {
    "paragraph", "heading", "bulletList", "orderedList", "codeBlock", "blockquote", "table",
    "rule", "mediaSingle", "mediaGroup", "panel", "expand", "taskList", "decisionList",
    "nestedExpand", "extension", "bodiedExtension", "blockCard", "embedCard", "layoutSection",
}  # fmt: skip
_LIST_ITEM = {"paragraph", "bulletList", "orderedList", "codeBlock", "mediaSingle", "taskList"}
_QUOTE = {"paragraph", "bulletList", "orderedList", "codeBlock", "mediaGroup", "mediaSingle"}
_CELL = _TOP - {"table", "layoutSection"}
_INLINE = {"text", "hardBreak", "mention", "emoji", "date", "status", "inlineCard", "mediaInline",
           "placeholder", "inlineExtension"}  # fmt: skip
_KNOWN_MARKS = set(ADF_MARKS) | {"subsup", "textColor", "backgroundColor", "annotation", "border",
                                 "alignment", "indentation", "breakout", "dataConsumer", "fragment"}  # fmt: skip


def doc(blocks: list[Block]) -> dict:
    """A valid ADF document (``{"type": "doc", "version": 1, "content": [...]}``) for blocks."""
    return {"type": "doc", "version": 1, "content": _blocks(blocks, _TOP)}


def _blocks(blocks: list[Block], allowed: set[str]) -> list[dict]:
    out: list[dict] = []
    for b in blocks:
        out += _block(b, allowed)
    return out


def _block(b: Block, allowed: set[str]) -> list[dict]:  # noqa: C901 - one case per kind
    if b.kind == "p":
        return [_paragraph(b.inlines)]
    if b.kind == "h":
        if "heading" in allowed:
            content = _inlines(b.inlines)
            return [
                {"type": "heading", "attrs": {"level": min(6, max(1, b.level))}, "content": content}
            ]
        return [_paragraph([Inline("text", inline_text(b.inlines), ("strong",))])]
    if b.kind == "code":
        content = [{"type": "text", "text": b.text}] if b.text else []
        node: dict[str, Any] = {"type": "codeBlock", "content": content}
        if b.language:
            node["attrs"] = {"language": b.language}
        return [node]
    if b.kind in ("ul", "ol"):
        items = []
        for item in b.items:
            content = _blocks(item, _LIST_ITEM)
            if not content or content[0]["type"] != "paragraph":
                content.insert(0, {"type": "paragraph", "content": []})
            items.append({"type": "listItem", "content": content})
        if not items:
            return []
        if b.kind == "ul":
            return [{"type": "bulletList", "content": items}]
        return [{"type": "orderedList", "attrs": {"order": 1}, "content": items}]
    if b.kind == "quote":
        content = _blocks(b.children, _QUOTE)
        if "blockquote" not in allowed:
            return content
        return [
            {"type": "blockquote", "content": content or [{"type": "paragraph", "content": []}]}
        ]
    if b.kind == "table":
        if "table" not in allowed:
            return [
                _paragraph([Inline("text", " | ".join(_cell_text(c) for c in row))])
                for row in b.rows
            ]
        width = max(len(row) for row in b.rows)
        rows = []
        for row in b.rows:
            cells = []
            for c in row + [None] * (width - len(row)):
                content = _blocks(c.blocks, _CELL) if c else []
                cells.append({
                    "type": "tableHeader" if c and c.header else "tableCell",
                    "attrs": {},
                    "content": content or [{"type": "paragraph", "content": []}],
                })  # fmt: skip
            rows.append({"type": "tableRow", "content": cells})
        return [{"type": "table", "attrs": {"isNumberColumnEnabled": False, "layout": "default"},
                 "content": rows}]  # fmt: skip
    if b.kind == "rule":
        return [{"type": "rule"}] if "rule" in allowed else []
    return []


def _cell_text(c: Cell) -> str:
    parts = []
    for b in c.blocks:
        parts.append(inline_text(b.inlines) if b.inlines else b.text)
    return " ".join(p for p in parts if p)


def _paragraph(inlines: list[Inline]) -> dict:
    return {"type": "paragraph", "content": _inlines(inlines)}


def _inlines(inlines: list[Inline]) -> list[dict]:
    out: list[dict] = []
    for i in inlines:
        if i.kind == "br":
            out.append({"type": "hardBreak"})
            continue
        if i.kind == "mention":
            text, marks, href = mention_text(i.text), (), ""
        elif i.kind == "image":
            text, marks, href = image_text(i.text), (), ""
        else:
            text, marks, href = i.text, i.marks, i.href
        if not text:
            continue
        node: dict[str, Any] = {"type": "text", "text": text}
        adf_marks = _marks(marks, href)
        if adf_marks:
            node["marks"] = adf_marks
        out.append(node)
    return out


def _marks(marks: tuple[str, ...], href: str) -> list[dict]:
    if "code" in marks:
        return [{"type": "code"}]
    out = []
    for m in dict.fromkeys(marks):
        if m == "link":
            if href:
                out.append({"type": "link", "attrs": {"href": href}})
        elif m in ("sup", "sub"):
            if not any(x["type"] == "subsup" for x in out):
                out.append({"type": "subsup", "attrs": {"type": m}})
        elif m in ADF_MARKS:
            out.append({"type": m})
    return out


# -- validation ----------------------------------------------------------------------------
def problems(document: Any) -> list[str]:
    """What makes ``document`` invalid ADF by the rules of jira-api.md §5.2 ([] when valid).

    Checks the root (``doc``, ``version`` 1), known node types and their nesting, non-empty
    text, mark rules (no duplicates; ``code`` only with ``link``), heading levels, list
    structure, ``codeBlock`` content and ``mediaSingle`` holding one ``media``.
    """
    found: list[str] = []
    if not isinstance(document, dict) or document.get("type") != "doc":
        return ["the root is not a doc node"]
    if document.get("version") != 1:
        found.append("doc.version must be 1")
    content = document.get("content")
    if not isinstance(content, list):
        return found + ["doc.content must be a list"]
    for n, node in enumerate(content):
        _check(node, _TOP, f"content[{n}]", found)
    return found


def _check(node: Any, allowed: set[str], where: str, found: list[str]) -> None:  # noqa: C901
    if not isinstance(node, dict) or not isinstance(node.get("type"), str):
        found.append(f"{where}: not a node")
        return
    kind = node["type"]
    if kind not in allowed:
        found.append(f"{where}: {kind} is not allowed here")
        return
    content = node.get("content", [])
    if not isinstance(content, list):
        found.append(f"{where}.content must be a list")
        return
    attrs = node.get("attrs") or {}
    if kind == "text":
        if not isinstance(node.get("text"), str) or not node["text"]:
            found.append(f"{where}: text must be a non-empty string")
        _check_marks(node.get("marks", []), where, found)
        return
    if kind == "heading" and attrs.get("level") not in (1, 2, 3, 4, 5, 6):
        found.append(f"{where}: heading level must be 1-6")
    if kind in ("bulletList", "orderedList"):
        if not content:
            found.append(f"{where}: a list needs at least one listItem")
        if (
            kind == "orderedList"
            and "order" in attrs
            and not (isinstance(attrs["order"], int) and attrs["order"] >= 0)
        ):
            found.append(f"{where}: orderedList.order must be >= 0")
        children = {"listItem"}
    elif kind == "listItem":
        if not content or content[0].get("type") in ("bulletList", "orderedList"):
            found.append(f"{where}: a listItem must start with a paragraph")
        children = _LIST_ITEM
    elif kind == "codeBlock":
        for n, t in enumerate(content):
            if not isinstance(t, dict) or t.get("type") != "text" or t.get("marks"):
                found.append(f"{where}.content[{n}]: codeBlock holds unmarked text only")
        children = {"text"}
    elif kind == "blockquote":
        children = _QUOTE
    elif kind == "table":
        children = {"tableRow"}
    elif kind == "tableRow":
        children = {"tableHeader", "tableCell"}
    elif kind in ("tableHeader", "tableCell"):
        if not content:
            found.append(f"{where}: a table cell needs block content")
        children = _CELL
    elif kind == "mediaSingle":
        if len(content) < 1 or content[0].get("type") != "media":
            found.append(f"{where}: mediaSingle must hold one media node")
        children = {"media", "caption"}
    elif kind == "media":
        if not attrs.get("id") and attrs.get("type") != "external":
            found.append(f"{where}: media needs attrs.id")
        children = set()
    elif kind == "mention":
        if not attrs.get("id"):
            found.append(f"{where}: mention needs attrs.id")
        children = set()
    elif kind in ("paragraph", "heading"):
        children = _INLINE
    elif kind in _INLINE or kind in ("rule", "mediaGroup"):
        children = {"media"} if kind == "mediaGroup" else set()
    else:
        return  # a block Jira may send (panel, expand, ...): not ours to judge deeper
    for n, child in enumerate(content):
        _check(child, children, f"{where}.content[{n}]", found)


def _check_marks(marks: Any, where: str, found: list[str]) -> None:
    if not isinstance(marks, list):
        found.append(f"{where}: marks must be a list")
        return
    types = [m.get("type") if isinstance(m, dict) else None for m in marks]
    if len(set(types)) != len(types):
        found.append(f"{where}: the same mark twice")
    for t in types:
        if t not in _KNOWN_MARKS:
            found.append(f"{where}: unknown mark {t!r}")
    if "code" in types and set(types) - {"code", "link", "annotation"}:
        found.append(f"{where}: code combines only with link")
    for m in marks:
        if (
            isinstance(m, dict)
            and m.get("type") == "link"
            and not (m.get("attrs") or {}).get("href")
        ):
            found.append(f"{where}: link needs attrs.href")


# -- reading -------------------------------------------------------------------------------
def to_text(node: Any) -> str:
    """The plain text of an ADF node (a fallback when Jira sends no rendered HTML).

    Paragraph-like blocks end with a blank line, hard breaks are newlines, mentions their
    ``@Name``, emoji their text, cards their URL, media ``[image: alt]``.
    """
    if not isinstance(node, dict):
        return ""
    kind = node.get("type")
    attrs = node.get("attrs") or {}
    if kind == "text":
        return str(node.get("text") or "")
    if kind == "hardBreak":
        return "\n"
    if kind == "mention":
        return mention_text(str(attrs.get("text") or attrs.get("id") or ""))
    if kind == "emoji":
        return str(attrs.get("text") or attrs.get("shortName") or "")
    if kind in ("inlineCard", "blockCard", "embedCard"):
        return str(attrs.get("url") or "")
    if kind == "status":
        return f"[{attrs.get('text') or ''}]"
    if kind == "media":
        return image_text(str(attrs.get("alt") or "attachment"))
    inner = "".join(to_text(c) for c in node.get("content") or [])
    if kind in ("paragraph", "heading", "codeBlock", "listItem", "tableRow", "mediaSingle"):
        return inner.rstrip("\n") + "\n\n" if kind != "tableRow" else inner + "\n"
    if kind == "doc":
        return inner.strip("\n")
    return inner
