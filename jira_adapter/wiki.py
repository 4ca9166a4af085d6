"""Jira wiki markup (Data Center REST v2 bodies) from the blocks of ``jira_adapter.markup``.

Notation from Jira's text-formatting help (jira-api.md §5.5): ``*bold*``, ``_italic_``,
``+underline+``, ``-strike-``, ``{{monospace}}``, ``^sup^``, ``~sub~``, ``[text|url]``,
``h1.``–``h6.``, ``*``/``#`` lists (repeated for depth), ``{code:lang}``/``{noformat}``,
``{quote}``, ``||header||`` and ``|cell|`` tables, ``----`` rules. Text is escaped with
``\\`` so characters from ServiceNow never turn into formatting; a line break inside a
list item or a table cell is ``\\\\`` (a newline would end the item or the row), elsewhere
a newline. Mentions and images are plain text (``@Name``, ``[image: x]``), never
``[~user]`` or ``!file!``.
"""

from __future__ import annotations

import re

from .markup import Block, Inline, image_text, mention_text

_WRAP = {
    "strong": ("*", "*"), "em": ("_", "_"), "underline": ("+", "+"), "strike": ("-", "-"),
    "sup": ("^", "^"), "sub": ("~", "~"), "code": ("{{", "}}"),
}  # fmt: skip
_ALWAYS = re.compile(r"([*_{}\[\]|^~+\\])")
_DASH = re.compile(r"(?:(?<=\s)|^)-(?=\S)|(?<=\S)-(?=\s|$|[.,;:!?)])")
_BANG = re.compile(r"!(?=\S)")


def escape(text: str) -> str:
    """Text with wiki metacharacters escaped (``*`` → ``\\*``; a ``-`` only where it could strike)."""
    text = _ALWAYS.sub(r"\\\1", text)
    text = _DASH.sub(r"\\-", text)
    text = _BANG.sub(r"\\!", text)
    return re.sub(r"(?m)^(#|h[1-6]\.|bq\.)", r"\\\1", text)


def markup(blocks: list[Block]) -> str:
    """The wiki markup of a document: blocks separated by a blank line."""
    return "\n\n".join(part for part in (_block(b, 0, "") for b in blocks) if part).strip("\n")


def _block(b: Block, depth: int, bullets: str) -> str:  # noqa: C901 - one case per kind
    tight = bool(bullets)
    if b.kind == "p":
        return _inlines(b.inlines, tight=tight)
    if b.kind == "h":
        return f"h{min(6, max(1, b.level))}. {_inlines(b.inlines, tight=True)}"
    if b.kind == "code":
        body = b.text.replace("{code}", "{code }").replace("{noformat}", "{noformat }")
        if b.language and re.fullmatch(r"[a-z0-9+#]{1,20}", b.language):
            return f"{{code:{b.language}}}\n{body}\n{{code}}"
        return f"{{noformat}}\n{body}\n{{noformat}}"
    if b.kind in ("ul", "ol"):
        mark = bullets + ("*" if b.kind == "ul" else "#")
        lines = []
        for item in b.items:
            first, rest = True, []
            for child in item:
                if child.kind in ("ul", "ol"):
                    rest.append(_block(child, depth + 1, mark))
                elif first:
                    lines.append(f"{mark} {_block(child, depth + 1, mark)}")
                    first = False
                else:
                    rest.append(f"{mark} {_block(child, depth + 1, mark)}")
            if first and not rest:
                lines.append(f"{mark} ")
            lines += rest
        return "\n".join(lines)
    if b.kind == "quote":
        inner = "\n\n".join(_block(c, depth, "") for c in b.children)
        return f"{{quote}}\n{inner}\n{{quote}}"
    if b.kind == "table":
        lines = []
        for row in b.rows:
            parts = []
            for cell in row:
                text = " \\\\ ".join(_block(c, depth, "|") for c in cell.blocks) or " "
                parts.append(("||" if cell.header else "|") + text)
            closing = "||" if row and row[-1].header else "|"
            lines.append("".join(parts) + closing)
        return "\n".join(lines)
    if b.kind == "rule":
        return "----"
    return ""


def _inlines(inlines: list[Inline], *, tight: bool) -> str:
    out = []
    for i in inlines:
        if i.kind == "br":
            out.append(" \\\\ " if tight else "\n")
        elif i.kind == "mention":
            out.append(escape(mention_text(i.text)))
        elif i.kind == "image":
            out.append(escape(image_text(i.text)))
        else:
            out.append(_run(i))
    return "".join(out).strip(" ")


def _run(i: Inline) -> str:
    text = i.text
    lead = text[: len(text) - len(text.lstrip())]
    trail = text[len(text.rstrip()) :]
    core = text.strip()
    if not core:
        return text
    if "code" in i.marks:
        body = core.replace("}}", "} }")
        body = "{{" + re.sub(r"([*_\[\]|^~+])", r"\\\1", body) + "}}"
    else:
        body = escape(core)
        for mark in i.marks:
            if mark in _WRAP:
                left, right = _WRAP[mark]
                body = f"{left}{body}{right}"
    if "link" in i.marks and i.href:
        href = i.href.replace("|", "%7C").replace("]", "%5D").replace(" ", "%20")
        label = body if core != i.href else ""
        body = f"[{label}|{href}]" if label else f"[{href}]"
    return f"{lead}{body}{trail}"
