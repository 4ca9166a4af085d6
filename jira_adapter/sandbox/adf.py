"""Atlassian Document Format in the sandbox: the validator, and renderings to HTML and wiki text.

:func:`check_adf` enforces the rules of the reference note §5.2 (root ``doc`` with
``version`` 1; known node types in allowed places; non-empty ``text``; no repeated mark;
``code`` only with ``link``; lists of ``listItem`` whose first child is not a list;
heading levels 1–6; ``codeBlock`` of unmarked text; ``mediaSingle`` around exactly one
``media``; tables of rows of cells) and raises the 400 a site answers (§5.3):
``INVALID_INPUT`` for a broken document, the field-specific message for an object that
is not a document, "Operation value must be an Atlassian Document" for a string.
:func:`adf_to_html` is the ``renderedFields`` rendering (Jira's wiki-renderer classes);
:func:`adf_to_wiki` is the v2 text webhook payloads carry (§8.3).
"""

from __future__ import annotations

import html
import json

from .wire import (
    M_BAD_ADF,
    M_INVALID_INPUT,
    M_NOT_ADF,
    M_TOO_LONG,
    TEXT_LIMIT,
    HttpError,
    field_error,
)

INLINE = {"text", "hardBreak", "mention", "emoji", "inlineCard", "date", "status", "mediaInline"}
LIST_ITEM_CHILDREN = {"paragraph", "codeBlock", "mediaSingle", "bulletList", "orderedList"}
CELL_CHILDREN = {"paragraph", "heading", "bulletList", "orderedList", "codeBlock", "blockquote",
                 "mediaSingle", "mediaGroup", "rule", "panel"}  # fmt: skip
BLOCKS = CELL_CHILDREN | {"table", "expand", "taskList", "decisionList"}
CHILDREN = {
    "doc": BLOCKS,
    "paragraph": INLINE,
    "heading": INLINE,
    "bulletList": {"listItem"},
    "orderedList": {"listItem"},
    "listItem": LIST_ITEM_CHILDREN,
    "codeBlock": {"text"},
    "blockquote": {
        "paragraph",
        "bulletList",
        "orderedList",
        "codeBlock",
        "mediaSingle",
        "mediaGroup",
    },
    "panel": {
        "paragraph",
        "heading",
        "bulletList",
        "orderedList",
        "codeBlock",
        "mediaSingle",
        "rule",
    },
    "table": {"tableRow"},
    "tableRow": {"tableHeader", "tableCell"},
    "tableHeader": CELL_CHILDREN,
    "tableCell": CELL_CHILDREN,
    "mediaSingle": {"media", "caption"},
    "mediaGroup": {"media"},
    "expand": BLOCKS - {"expand"},
    "taskList": {"taskItem"},
    "taskItem": INLINE,
    "decisionList": {"decisionItem"},
    "decisionItem": INLINE,
    "caption": INLINE,
}
LEAVES = INLINE - {"text"} | {"rule", "media"}
MARKS = {"strong", "em", "code", "strike", "underline", "link", "subsup", "textColor",
         "backgroundColor", "annotation"}  # fmt: skip
NEEDS_CONTENT = {"bulletList", "orderedList", "listItem", "blockquote", "table", "tableRow",
                 "tableHeader", "tableCell", "mediaSingle", "mediaGroup", "taskList", "decisionList"}  # fmt: skip
LAYOUTS = {"wrap-left", "center", "wrap-right", "wide", "full-width", "align-start", "align-end"}


class _Broken(Exception):
    pass


def check_adf(value, field: str) -> None:
    """Raise the 400 a v3 site answers when ``value`` is not a valid ADF document for ``field``.

    ``field`` is ``description`` (or another rich-text field id) or ``comment``; the size
    rule is :func:`check_length`.
    """
    if isinstance(value, str):
        raise field_error(field, "Comment body is not valid!" if field == "comment" else M_NOT_ADF)
    if not isinstance(value, dict) or value.get("type") != "doc":
        raise field_error(field, "Comment body is not valid!" if field == "comment" else M_BAD_ADF)
    try:
        if value.get("version") != 1 or not isinstance(value.get("content", []), list):
            raise _Broken
        _check_node(value, "doc", top=True)
    except _Broken:
        raise HttpError(400, [M_INVALID_INPUT]) from None
    check_length(value, field)


def check_length(value, field: str) -> None:
    """The 32,767-character limit: a wiki string's length, an ADF document's compact JSON size.

    How a site measures ADF is not documented; the sandbox takes the stricter reading
    (the stored JSON), so a client that leaves headroom passes on a real site too.
    """
    size = (
        len(value)
        if isinstance(value, str)
        else len(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    )
    if size > TEXT_LIMIT:
        raise field_error(field, M_TOO_LONG)


def _check_node(node, parent: str, *, top: bool = False) -> None:
    if not isinstance(node, dict) or not isinstance(node.get("type"), str):
        raise _Broken
    kind = node["type"]
    if not top and kind not in CHILDREN.get(parent, set()):
        raise _Broken
    attrs = node.get("attrs") or {}
    if not isinstance(attrs, dict):
        raise _Broken
    if kind == "text":
        _check_text(node, code_block=parent == "codeBlock")
        return
    if node.get("marks"):
        raise _Broken
    if kind == "heading" and attrs.get("level") not in (1, 2, 3, 4, 5, 6):
        raise _Broken
    if kind == "orderedList" and not (
        attrs.get("order") is None or (isinstance(attrs["order"], int) and attrs["order"] >= 0)
    ):
        raise _Broken
    if kind == "mention" and not isinstance(attrs.get("id"), str):
        raise _Broken
    if kind == "mediaSingle" and attrs.get("layout", "center") not in LAYOUTS:
        raise _Broken
    if kind == "media" and (
        attrs.get("type") not in ("file", "link", "external")
        or (attrs.get("type") != "external" and not isinstance(attrs.get("id"), str))
    ):
        raise _Broken
    content = node.get("content", [])
    if kind in LEAVES:
        if content:
            raise _Broken
        return
    if not isinstance(content, list) or (kind in NEEDS_CONTENT and not content):
        raise _Broken
    if kind == "listItem" and content[0].get("type") in ("bulletList", "orderedList"):
        raise _Broken
    if kind == "mediaSingle" and [c.get("type") for c in content].count("media") != 1:
        raise _Broken
    for child in content:
        _check_node(child, kind)


def _check_text(node: dict, *, code_block: bool) -> None:
    text, marks = node.get("text"), node.get("marks") or []
    if not isinstance(text, str) or not text or not isinstance(marks, list):
        raise _Broken
    if code_block and marks:
        raise _Broken
    types = [m.get("type") if isinstance(m, dict) else None for m in marks]
    if len(set(types)) != len(types) or not set(types) <= MARKS:
        raise _Broken
    if "code" in types and set(types) - {"code", "link", "annotation"}:
        raise _Broken
    for mark in marks:
        attrs = mark.get("attrs") or {}
        if mark["type"] == "link" and not isinstance(attrs.get("href"), str):
            raise _Broken
        if mark["type"] == "subsup" and attrs.get("type") not in ("sub", "sup"):
            raise _Broken


# -- rendering -----------------------------------------------------------------------------
_MARK_HTML = {"strong": ("<b>", "</b>"), "em": ("<em>", "</em>"), "code": ("<tt>", "</tt>"),
              "strike": ("<del>", "</del>"), "underline": ("<ins>", "</ins>")}  # fmt: skip


def adf_to_html(doc, site_url: str = "") -> str:
    """HTML as ``renderedFields`` / ``renderedBody`` give it (empty string for no document)."""
    if not isinstance(doc, dict):
        return ""
    return "".join(_html(n, site_url) for n in doc.get("content") or [])


def _html(node: dict, site: str) -> str:
    kind, attrs = node.get("type"), node.get("attrs") or {}
    inner = "".join(_html(c, site) for c in node.get("content") or [])
    if kind == "text":
        out = html.escape(node["text"], quote=False)
        for mark in node.get("marks") or []:
            mtype, mattrs = mark.get("type"), mark.get("attrs") or {}
            if mtype in _MARK_HTML:
                out = _MARK_HTML[mtype][0] + out + _MARK_HTML[mtype][1]
            elif mtype == "link":
                href = html.escape(mattrs.get("href", ""))
                out = f'<a href="{href}" class="external-link" rel="nofollow noreferrer">{out}</a>'
            elif mtype == "subsup":
                out = f"<{mattrs['type']}>{out}</{mattrs['type']}>"
        return out
    if kind == "paragraph":
        return f"<p>{inner}</p>"
    if kind == "heading":
        return f"<h{attrs['level']}>{inner}</h{attrs['level']}>"
    if kind == "hardBreak":
        return "<br/>"
    if kind == "bulletList":
        return f'<ul class="alternate" type="disc">{inner}</ul>'
    if kind == "orderedList":
        return f"<ol>{inner}</ol>"
    if kind == "listItem":
        return f"<li>{inner.removeprefix('<p>').replace('</p>', '', 1)}</li>"
    if kind == "codeBlock":
        lang = html.escape(attrs.get("language") or "java")
        text = "".join(
            html.escape(c.get("text", ""), quote=False) for c in node.get("content") or []
        )
        return (f'<div class="code panel" style="border-width: 1px;"><div class="codeContent panelContent">'
                f'<pre class="code-{lang}">{text}</pre></div></div>')  # fmt: skip
    if kind == "blockquote":
        return f"<blockquote>{inner}</blockquote>"
    if kind == "rule":
        return "<hr />"
    if kind == "mention":
        name = html.escape((attrs.get("text") or "").lstrip("@"))
        acc = html.escape(attrs.get("id", ""))
        return f'<a href="{site}/secure/ViewProfile.jspa?accountId={acc}" class="user-hover" rel="{acc}">{name}</a>'
    if kind == "table":
        return f"<div class='table-wrap'><table class='confluenceTable'><tbody>{inner}</tbody></table></div>"
    if kind == "tableRow":
        return f"<tr>{inner}</tr>"
    if kind in ("tableHeader", "tableCell"):
        tag, cls = ("th", "confluenceTh") if kind == "tableHeader" else ("td", "confluenceTd")
        return f"<{tag} class='{cls}'>{inner.removeprefix('<p>').removesuffix('</p>')}</{tag}>"
    if kind == "media":
        alt = html.escape(attrs.get("alt") or "image")
        return f'<span class="image-wrap" style=""><img src="{site}/images/icons/attach/file.gif" alt="{alt}" /></span>'
    if kind in ("emoji", "status"):
        return html.escape(attrs.get("text") or attrs.get("shortName") or "")
    if kind == "inlineCard":
        url = html.escape(attrs.get("url", ""))
        return f'<a href="{url}" class="external-link" rel="nofollow noreferrer">{url}</a>'
    return inner


_MARK_WIKI = {"strong": "*", "em": "_", "strike": "-", "underline": "+"}


def adf_to_wiki(doc) -> str:
    """Wiki markup for an ADF document (the v2 form webhook payloads carry)."""
    if isinstance(doc, str):
        return doc
    if not isinstance(doc, dict):
        return ""
    return "\n\n".join(_wiki(n, 1) for n in doc.get("content") or []).strip()


def _wiki(node: dict, depth: int, bullet: str = "*") -> str:
    kind, attrs = node.get("type"), node.get("attrs") or {}
    content = node.get("content") or []
    if kind == "text":
        out = node["text"]
        for mark in node.get("marks") or []:
            mtype = mark.get("type")
            if mtype == "code":
                out = "{{" + out + "}}"
            elif mtype in _MARK_WIKI:
                out = _MARK_WIKI[mtype] + out + _MARK_WIKI[mtype]
            elif mtype == "link":
                out = f"[{out}|{(mark.get('attrs') or {}).get('href', '')}]"
        return out
    if kind == "hardBreak":
        return "\\\\"
    if kind == "mention":
        return f"[~accountid:{attrs.get('id', '')}]"
    if kind == "heading":
        return f"h{attrs['level']}. " + "".join(_wiki(c, depth) for c in content)
    if kind in ("bulletList", "orderedList"):
        mark = "*" if kind == "bulletList" else "#"
        return "\n".join(
            _wiki(c, depth, bullet[: depth - 1] + mark if depth > 1 else mark) for c in content
        )
    if kind == "listItem":
        parts = []
        for child in content:
            if child.get("type") in ("bulletList", "orderedList"):
                parts.append(_wiki(child, depth + 1, bullet))
            else:
                parts.append(f"{bullet} " + _wiki(child, depth))
        return "\n".join(parts)
    if kind == "codeBlock":
        text = "".join(c.get("text", "") for c in content)
        lang = attrs.get("language")
        return ("{code:" + lang + "}" if lang else "{code}") + f"\n{text}\n" + "{code}"
    if kind == "blockquote":
        return "{quote}\n" + "\n\n".join(_wiki(c, depth) for c in content) + "\n{quote}"
    if kind == "media":
        return f"!{attrs.get('alt') or attrs.get('id', '')}!"
    if kind == "tableRow":
        cells = [
            (c.get("type"), " ".join(_wiki(x, depth) for x in c.get("content") or []))
            for c in content
        ]
        return "".join(("||" if t == "tableHeader" else "|") + text for t, text in cells) + (
            "||" if cells and cells[-1][0] == "tableHeader" else "|"
        )
    if kind == "table":
        return "\n".join(_wiki(c, depth) for c in content)
    if kind in ("emoji", "status"):
        return attrs.get("text") or attrs.get("shortName") or ""
    return "".join(_wiki(c, depth) for c in content)


def text_doc(text: str) -> dict:
    """A one-paragraph ADF document holding ``text`` (for seeds and payloads)."""
    return {"type": "doc", "version": 1,
            "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}]}  # fmt: skip
