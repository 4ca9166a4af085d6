"""Jira wiki markup → HTML, the ``renderedFields`` of a Data Center site (reference note §5.5).

The subset a sync meets: ``*bold*``, ``_italic_``, ``{{mono}}``, ``-strike-``, ``+ins+``,
``^sup^``, ``~sub~``, ``[text|url]`` and ``[url]``, ``[~user]`` mentions, ``h1.``–``h6.``,
``*``/``#`` lists (nested by repetition), ``{code[:lang]}`` and ``{noformat}`` blocks,
``bq.`` and ``{quote}``, ``||head||`` / ``|cell|`` tables, ``\\\\`` line breaks and
``!image.png!``. Everything is HTML-escaped before markup is applied.
"""

from __future__ import annotations

import html
import re

_INLINE = [
    (re.compile(r"\{\{(.+?)\}\}"), r"<tt>\1</tt>"),
    (re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])"), r"<b>\1</b>"),
    (re.compile(r"(?<![\w_])_(?=\S)(.+?)(?<=\S)_(?![\w_])"), r"<em>\1</em>"),
    (re.compile(r"(?<![\w-])-(?=\S)(.+?)(?<=\S)-(?![\w-])"), r"<del>\1</del>"),
    (re.compile(r"(?<![\w+])\+(?=\S)(.+?)(?<=\S)\+(?![\w+])"), r"<ins>\1</ins>"),
    (re.compile(r"\^(?=\S)(.+?)(?<=\S)\^"), r"<sup>\1</sup>"),
    (re.compile(r"(?<![\w~])~(?=\S)(.+?)(?<=\S)~(?![\w~])"), r"<sub>\1</sub>"),
]
_LINK = re.compile(
    r"\[([^\[\]|]+)\|((?:https?|mailto):[^\[\]\s]+)\]|\[((?:https?|mailto):[^\[\]\s]+)\]"
)
_MENTION = re.compile(r"\[~(?:accountid:)?([^\]]+)\]")
_IMAGE = re.compile(r"!([^!\s|]+\.[A-Za-z0-9]+)(?:\|[^!]*)?!")
_LIST = re.compile(r"^([*#]+)\s+(.*)$")
_HEADING = re.compile(r"^h([1-6])\.\s+(.*)$")


def _inline(text: str, site: str) -> str:
    out = html.escape(text, quote=False)
    links: list[str] = []

    def keep(fragment: str) -> str:
        links.append(fragment)
        return f"\x00{len(links) - 1}\x00"

    out = out.replace("\\\\", keep("<br/>"))  # a forced line break
    out = re.sub(r"\\([^\w\s])", lambda m: keep(m.group(1)), out)  # \* is a literal *
    out = _LINK.sub(
        lambda m: keep(
            f'<a href="{html.escape(m.group(2) or m.group(3))}" class="external-link" rel="nofollow">'
            f"{m.group(1) or m.group(3)}</a>"
        ),
        out,
    )
    out = _MENTION.sub(
        lambda m: keep(
            f'<a href="{site}/secure/ViewProfile.jspa?name={html.escape(m.group(1))}" class="user-hover" '
            f'rel="{html.escape(m.group(1))}">{m.group(1)}</a>'
        ),
        out,
    )
    out = _IMAGE.sub(
        lambda m: keep(f'<span class="image-wrap" style=""><img src="{m.group(1)}" /></span>'), out
    )
    for pattern, repl in _INLINE:
        out = pattern.sub(repl, out)
    return re.sub("\x00(\\d+)\x00", lambda m: links[int(m.group(1))], out)


def wiki_to_html(text: str | None, site_url: str = "") -> str:
    """HTML for a wiki-markup string (empty string for None)."""
    if not text:
        return ""
    lines = text.replace("\r\n", "\n").split("\n")
    out: list[str] = []
    para: list[str] = []
    stack: list[str] = []  # open list tags

    def flush_para():
        if para:
            out.append("<p>" + "<br/>\n".join(_inline(p, site_url) for p in para) + "</p>")
            para.clear()

    def close_lists(depth: int = 0):
        while len(stack) > depth:
            out.append(f"</{stack.pop()}>")

    i = 0
    while i < len(lines):
        line = lines[i]
        block = re.match(r"^\{(code|noformat)(?::([\w+#-]+))?\}(.*)$", line.strip())
        if block:
            flush_para(), close_lists()
            kind, lang, rest = block.groups()
            body = [rest] if rest else []
            i += 1
            while i < len(lines) and not lines[i].rstrip().endswith("{" + kind + "}"):
                body.append(lines[i])
                i += 1
            if i < len(lines):
                tail = lines[i].rstrip()[: -len(kind) - 2]
                if tail:
                    body.append(tail)
            code = html.escape("\n".join(body), quote=False)
            if kind == "code":
                out.append(f'<div class="code panel" style="border-width: 1px;"><div class="codeContent panelContent">'
                           f'<pre class="code-{lang or "java"}">{code}</pre></div></div>')  # fmt: skip
            else:
                out.append(
                    f'<div class="preformatted panel"><div class="preformattedContent panelContent"><pre>{code}</pre></div></div>'
                )
            i += 1
            continue
        if line.strip() == "{quote}":
            flush_para(), close_lists()
            body = []
            i += 1
            while i < len(lines) and lines[i].strip() != "{quote}":
                body.append(lines[i])
                i += 1
            out.append(f"<blockquote>{wiki_to_html(chr(10).join(body), site_url)}</blockquote>")
            i += 1
            continue
        heading, item = _HEADING.match(line), _LIST.match(line)
        if heading:
            flush_para(), close_lists()
            out.append(
                f"<h{heading.group(1)}>{_inline(heading.group(2), site_url)}</h{heading.group(1)}>"
            )
        elif line.startswith("bq. "):
            flush_para(), close_lists()
            out.append(f"<blockquote><p>{_inline(line[4:], site_url)}</p></blockquote>")
        elif item:
            flush_para()
            marks = item.group(1)
            close_lists(len(marks))
            while len(stack) < len(marks):
                tag = "ul" if marks[len(stack)] == "*" else "ol"
                out.append('<ul class="alternate" type="disc">' if tag == "ul" else "<ol>")
                stack.append(tag)
            out.append(f"<li>{_inline(item.group(2), site_url)}</li>")
        elif line.startswith("|"):
            flush_para(), close_lists()
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(lines[i].strip())
                i += 1
            out.append(_table(rows, site_url))
            continue
        elif not line.strip():
            flush_para(), close_lists()
        else:
            close_lists()
            para.append(line)
        i += 1
    flush_para(), close_lists()
    return "\n".join(out)


def _table(rows: list[str], site: str) -> str:
    html_rows = []
    for row in rows:
        cells = re.findall(r"(\|\|?)([^|]*)", row)
        if cells and not cells[-1][1].strip():
            cells.pop()  # the closing bar
        tds = []
        for bar, text in cells:
            tag, cls = ("th", "confluenceTh") if bar == "||" else ("td", "confluenceTd")
            tds.append(f"<{tag} class='{cls}'>{_inline(text.strip(), site)}</{tag}>")
        html_rows.append("<tr>" + "".join(tds) + "</tr>")
    return (
        "<div class='table-wrap'><table class='confluenceTable'><tbody>"
        + "".join(html_rows)
        + "</tbody></table></div>"
    )
