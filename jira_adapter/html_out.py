"""Jira → replica text: Jira's rendered HTML to a replica body, sanitised with ``nh3``.

Jira renders every rich-text field to HTML on request (``expand=renderedFields`` for an
issue, ``expand=renderedBody`` for comments; jira-api.md §1.2, §3.2), on Cloud and Data
Center alike, so one reader serves both. That HTML is parsed into blocks
(``jira_adapter.markup``), written back as a small, predictable HTML and cleaned by
``nh3`` with an allow-list (no attributes but ``href``, http(s)/mailto links only,
``rel="noopener noreferrer"``), because it will be shown inside ServiceNow.

A comment with formatting becomes ``[code]<html>[/code]`` (the replica body convention,
see ``jira_adapter.markup``); plain text stays plain. A description is always plain text
(:func:`blocks_to_text`): ServiceNow's ``description`` is a plain text field that would
show HTML tags literally.
"""

from __future__ import annotations

import html
import re

import nh3

from .markup import Block, Inline, has_formatting, html_to_blocks, image_text, mention_text

ALLOWED_TAGS = {
    "p", "br", "strong", "em", "u", "s", "code", "sup", "sub", "a", "h1", "h2", "h3", "h4",
    "h5", "h6", "ul", "ol", "li", "pre", "blockquote", "table", "thead", "tbody", "tr", "th",
    "td", "hr",
}  # fmt: skip
_CODE_TAG = re.compile(r"\[/?code\]", re.IGNORECASE)
_TAG = {"strong": "strong", "em": "em", "underline": "u", "strike": "s", "code": "code",
        "sup": "sup", "sub": "sub"}  # fmt: skip


def sanitize(fragment: str) -> str:
    """``fragment`` cleaned by nh3: only :data:`ALLOWED_TAGS`, ``href`` on links (http, https,
    mailto), no comments, scripts or styles."""
    return nh3.clean(
        fragment,
        tags=ALLOWED_TAGS,
        clean_content_tags={"script", "style"},
        attributes={"a": {"href"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


def rendered_to_body(rendered: str, *, base: str) -> str:
    """A Jira comment's rendered HTML as a replica body: plain text, or ``[code]<html>[/code]``."""
    blocks = html_to_blocks(rendered or "", base=base)
    if not has_formatting(blocks):
        return defuse(blocks_to_text(blocks))
    return f"[code]{defuse(sanitize(blocks_to_html(blocks)))}[/code]"


def defuse(text: str) -> str:
    """``[code]``/``[/code]`` typed in Jira made inert (a zero-width space before ``]``), so a
    person's text can never open an HTML segment in ServiceNow's journal."""
    return _CODE_TAG.sub(lambda m: m.group(0)[:-1] + "\u200b]", text)


def rendered_to_text(rendered: str, *, base: str) -> str:
    """A Jira description's rendered HTML as plain text (:func:`blocks_to_text`)."""
    return blocks_to_text(html_to_blocks(rendered or "", base=base))


# -- HTML ----------------------------------------------------------------------------------
def blocks_to_html(blocks: list[Block]) -> str:
    """Blocks as compact HTML (not yet sanitised)."""
    return "".join(_block_html(b) for b in blocks)


def _block_html(b: Block) -> str:
    if b.kind == "p":
        return f"<p>{_inlines_html(b.inlines)}</p>"
    if b.kind == "h":
        level = min(6, max(1, b.level))
        return f"<h{level}>{_inlines_html(b.inlines)}</h{level}>"
    if b.kind == "code":
        return f"<pre><code>{html.escape(b.text, quote=False)}</code></pre>"
    if b.kind in ("ul", "ol"):
        items = "".join(f"<li>{_flow_html(i)}</li>" for i in b.items)
        return f"<{b.kind}>{items}</{b.kind}>"
    if b.kind == "quote":
        return f"<blockquote>{blocks_to_html(b.children)}</blockquote>"
    if b.kind == "table":
        rows = []
        for row in b.rows:
            cells = "".join(
                f"<{'th' if c.header else 'td'}>{_flow_html(c.blocks)}</{'th' if c.header else 'td'}>"
                for c in row
            )
            rows.append(f"<tr>{cells}</tr>")
        return f"<table><tbody>{''.join(rows)}</tbody></table>"
    if b.kind == "rule":
        return "<hr>"
    return ""


def _flow_html(blocks: list[Block]) -> str:
    """A list item's or cell's blocks; a lone paragraph without its ``<p>``."""
    if len(blocks) == 1 and blocks[0].kind == "p":
        return _inlines_html(blocks[0].inlines)
    return blocks_to_html(blocks)


def _inlines_html(inlines: list[Inline]) -> str:
    out = []
    for i in inlines:
        if i.kind == "br":
            out.append("<br>")
            continue
        if i.kind == "mention":
            out.append(html.escape(mention_text(i.text), quote=False))
            continue
        if i.kind == "image":
            out.append(html.escape(image_text(i.text), quote=False))
            continue
        text = html.escape(i.text, quote=False)
        for mark in i.marks:
            if mark in _TAG:
                text = f"<{_TAG[mark]}>{text}</{_TAG[mark]}>"
        if "link" in i.marks and i.href:
            text = f'<a href="{html.escape(i.href)}">{text}</a>'
        out.append(text)
    return "".join(out)


# -- text ----------------------------------------------------------------------------------
def blocks_to_text(blocks: list[Block], indent: str = "") -> str:
    """Blocks as readable plain text: blank lines between blocks, ``- `` / ``1. `` list items,
    ``> `` quotes, `` | `` between table cells, links as ``text (url)``."""
    parts = []
    for b in blocks:
        text = _block_text(b, indent)
        if text:
            parts.append(text)
    return "\n\n".join(parts)


def _block_text(b: Block, indent: str) -> str:
    if b.kind in ("p", "h"):
        return indent + _inlines_text(b.inlines).replace("\n", "\n" + indent)
    if b.kind == "code":
        return "\n".join(indent + line for line in b.text.split("\n"))
    if b.kind in ("ul", "ol"):
        lines = []
        for n, item in enumerate(b.items, 1):
            bullet = "- " if b.kind == "ul" else f"{n}. "
            body = blocks_to_text(item, indent + "  ").lstrip(" ")
            body = "\n".join(line for line in body.split("\n") if line.strip())
            lines.append(f"{indent}{bullet}{body}")
        return "\n".join(lines)
    if b.kind == "quote":
        inner = blocks_to_text(b.children)
        return "\n".join(f"{indent}> {line}".rstrip() for line in inner.split("\n"))
    if b.kind == "table":
        return "\n".join(
            indent + " | ".join(blocks_to_text(c.blocks).replace("\n", " ") for c in row)
            for row in b.rows
        )
    if b.kind == "rule":
        return indent + "----"
    return ""


def _inlines_text(inlines: list[Inline]) -> str:
    out = []
    for i in inlines:
        if i.kind == "br":
            out.append("\n")
        elif i.kind == "mention":
            out.append(mention_text(i.text))
        elif i.kind == "image":
            out.append(image_text(i.text))
        elif (
            "link" in i.marks
            and i.href
            and i.text.strip() not in (i.href, i.href.removeprefix("mailto:"))
        ):
            out.append(f"{i.text} ({i.href})")
        else:
            out.append(i.text)
    return "".join(out)
