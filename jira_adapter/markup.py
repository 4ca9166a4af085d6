"""A small document model between ServiceNow text/HTML and Jira's ADF, wiki markup and HTML.

Both directions go through it: a replica body is parsed into :class:`Block` lists
(:func:`body_to_blocks`), Jira's rendered HTML too (:func:`html_to_blocks`); the emitters
are ``jira_adapter.adf`` (Cloud), ``jira_adapter.wiki`` (Data Center) and
``jira_adapter.html_out`` (back to a replica body).

The replica body convention is the one ServiceNow's journal uses and the ServiceNow
adapter passes through unchanged: plain text, in which a ``[code]…[/code]`` segment holds
HTML (ServiceNow renders such a segment as HTML in the activity stream). Plain text is
literal: no Markdown or wiki syntax is interpreted; blank lines separate paragraphs and a
single newline is a line break.

Inline marks: ``strong``, ``em``, ``underline``, ``strike``, ``code``, ``sup``, ``sub``
and ``link`` (with ``href``). Inline kinds: ``text``, ``br``, ``mention`` (a person's name,
never a notification target) and ``image`` (an inline picture, kept as its name).
Block kinds: ``p``, ``h`` (``level`` 1–6), ``ul``/``ol`` (``items``: lists of blocks),
``code`` (``text``, ``language``), ``quote`` (``children``), ``table`` (``rows`` of
:class:`Cell`) and ``rule``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

MARK_TAGS = {
    "b": "strong", "strong": "strong", "i": "em", "em": "em", "cite": "em", "u": "underline",
    "ins": "underline", "s": "strike", "del": "strike", "strike": "strike", "code": "code",
    "tt": "code", "kbd": "code", "samp": "code", "sup": "sup", "sub": "sub",
}  # fmt: skip
BLOCK_TAGS = {"p", "div", "section", "article", "header", "footer", "center", "dl", "dt", "dd"}
SKIP_CONTENT = {"script", "style", "head", "title", "template", "noscript", "object", "iframe"}
_CODE_SEGMENT = re.compile(r"\[code\](.*?)\[/code\]", re.DOTALL | re.IGNORECASE)
_SPACE = re.compile(r"[ \t\r\n\f\v]+")


@dataclass
class Inline:
    """One run of text with its marks, a line break (``br``), a mention or an inline image."""

    kind: str = "text"
    text: str = ""
    marks: tuple[str, ...] = ()
    href: str = ""


@dataclass
class Cell:
    """One table cell: ``header`` for ``<th>``, its ``blocks``."""

    header: bool = False
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Block:
    """One block of a document (see the module docstring for the kinds and their fields)."""

    kind: str
    inlines: list[Inline] = field(default_factory=list)
    level: int = 0
    items: list[list[Block]] = field(default_factory=list)
    children: list[Block] = field(default_factory=list)
    rows: list[list[Cell]] = field(default_factory=list)
    text: str = ""
    language: str = ""


def safe_href(href: str, base: str = "") -> str:
    """``href`` made absolute against ``base``; '' unless it is http(s) or mailto."""
    href = (href or "").strip()
    if not href:
        return ""
    if base:
        href = urljoin(base.rstrip("/") + "/", href)
    scheme = urlsplit(href).scheme.lower()
    return href if scheme in ("http", "https", "mailto") else ""


def text_to_blocks(text: str) -> list[Block]:
    """Plain text as paragraphs: blank lines separate them, one newline is a line break."""
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    blocks = []
    for chunk in re.split(r"\n[ \t]*\n+", text):
        if not chunk.strip():
            continue
        inlines: list[Inline] = []
        for i, line in enumerate(chunk.strip("\n").split("\n")):
            if i:
                inlines.append(Inline("br"))
            if line:
                inlines.append(Inline("text", line))
        blocks.append(Block("p", inlines))
    return blocks


def body_to_blocks(body: str) -> list[Block]:
    """A replica body (plain text with ``[code]<html>[/code]`` segments) as blocks."""
    body = body or ""
    blocks: list[Block] = []
    last = 0
    for match in _CODE_SEGMENT.finditer(body):
        blocks += text_to_blocks(body[last : match.start()])
        blocks += html_to_blocks(match.group(1))
        last = match.end()
    blocks += text_to_blocks(body[last:])
    return blocks


def html_to_blocks(html: str, *, base: str = "") -> list[Block]:
    """HTML (ServiceNow ``[code]`` content or Jira's ``renderedFields``) as blocks.

    Relative links are resolved against ``base``; links other than http(s)/mailto keep
    their text only. Jira's user links (``class="user-hover"`` or ``data-account-id``)
    become mentions; images become their ``alt`` text or file name.
    """
    parser = _Builder(base)
    parser.feed(html or "")
    parser.close()
    return parser.finish()


def has_formatting(blocks: list[Block]) -> bool:
    """True unless the blocks are paragraphs of unmarked text and line breaks (plain text)."""
    for b in blocks:
        if b.kind != "p":
            return True
        for i in b.inlines:
            if i.kind not in ("text", "br") or i.marks:
                return True
    return False


def inline_text(inlines: list[Inline]) -> str:
    """The text of inlines: line breaks as newlines, mentions as ``@Name``, images as ``[image: x]``."""
    out = []
    for i in inlines:
        if i.kind == "br":
            out.append("\n")
        elif i.kind == "mention":
            out.append(mention_text(i.text))
        elif i.kind == "image":
            out.append(image_text(i.text))
        else:
            out.append(i.text)
    return "".join(out)


def mention_text(name: str) -> str:
    """``@Dana Ops`` for a mention of Dana Ops (plain text: nobody is notified)."""
    name = (name or "").strip()
    return name if name.startswith("@") else f"@{name}"


def image_text(name: str) -> str:
    """``[image: router.png]``: the placeholder an inline image leaves in text."""
    return f"[image: {(name or 'image').strip()}]"


class _Builder(HTMLParser):
    """Builds blocks from HTML with a stack of containers (root, quote, list item, cell)."""

    def __init__(self, base: str):
        super().__init__(convert_charrefs=True)
        self.base = base
        self.root: list[Block] = []
        self.containers: list[list[Block]] = [self.root]
        self.lists: list[Block] = []
        self.tables: list[Block] = []
        self.inlines: list[Inline] = []
        self.heading = 0
        self.marks: list[tuple[str, str]] = []  # (tag, mark)
        self.links: list[str | None] = []  # open <a> hrefs ('' for none, None for a mention)
        self.mention_depth = 0
        self.pre: list[str] | None = None
        self.pre_language = ""
        self.skip = 0

    # -- helpers ----------------------------------------------------------------------------
    def _flush(self) -> None:
        inlines = _trim(self.inlines)
        self.inlines = []
        if self.heading:
            self.containers[-1].append(Block("h", inlines, level=self.heading))
        elif inlines:
            self.containers[-1].append(Block("p", inlines))

    def _current_marks(self) -> tuple[str, ...]:
        seen: list[str] = []
        for _, mark in self.marks:
            if mark not in seen:
                seen.append(mark)
        if self.links and self.links[-1]:
            seen.append("link")
        return tuple(seen)

    def _add_text(self, text: str) -> None:
        if not text:
            return
        if self.mention_depth:
            if self.inlines and self.inlines[-1].kind == "mention":
                self.inlines[-1].text += text
            else:
                self.inlines.append(Inline("mention", text))
            return
        marks = self._current_marks()
        href = (self.links[-1] or "") if "link" in marks else ""
        last = self.inlines[-1] if self.inlines else None
        if last and last.kind == "text" and last.marks == marks and last.href == href:
            last.text += text
        else:
            self.inlines.append(Inline("text", text, marks, href))

    # -- parser callbacks -------------------------------------------------------------------
    def handle_starttag(self, tag, attrs):  # noqa: C901 - one dispatch on the tag name
        """Open a mark, link, block or container."""
        a = dict(attrs)
        if tag in SKIP_CONTENT:
            self.skip += 1
            return
        if self.skip:
            return
        if self.pre is not None:
            if tag == "br":
                self.pre.append("\n")
            return
        if tag in MARK_TAGS:
            self.marks.append((tag, MARK_TAGS[tag]))
        elif tag == "a":
            classes = (a.get("class") or "").split()
            if "user-hover" in classes or a.get("data-account-id") or a.get("data-username"):
                self.mention_depth += 1
                self.links.append(None)
            else:
                self.links.append(safe_href(a.get("href") or "", self.base))
        elif tag == "br":
            self.inlines.append(Inline("br"))
        elif tag == "img" and "emoticon" in (a.get("class") or ""):
            self._add_text(a.get("alt") or a.get("title") or "")  # Jira's smileys: their text
        elif tag == "img":
            src = a.get("src") or ""
            name = a.get("alt") or a.get("title") or src.rstrip("/").rsplit("/", 1)[-1]
            self.inlines.append(Inline("image", name or "image"))
        elif tag in BLOCK_TAGS:
            self._flush()
        elif re.fullmatch(r"h[1-6]", tag):
            self._flush()
            self.heading = int(tag[1])
        elif tag == "pre":
            self._flush()
            self.pre = []
            classes = " ".join(filter(None, [a.get("class"), a.get("data-language")]))
            found = re.search(r"(?:code-|language-|^)([a-z0-9+#]+)$", classes.strip())
            self.pre_language = found.group(1) if found and found.group(1) != "code" else ""
        elif tag in ("ul", "ol"):
            self._flush()
            block = Block(tag)
            self.containers[-1].append(block)
            self.lists.append(block)
        elif tag == "li":
            self._flush()
            if not self.lists:  # a stray <li>: open an implicit list
                block = Block("ul")
                self.containers[-1].append(block)
                self.lists.append(block)
            item: list[Block] = []
            self.lists[-1].items.append(item)
            self.containers.append(item)
        elif tag == "blockquote":
            self._flush()
            block = Block("quote")
            self.containers[-1].append(block)
            self.containers.append(block.children)
        elif tag == "table":
            self._flush()
            block = Block("table")
            self.containers[-1].append(block)
            self.tables.append(block)
        elif tag == "tr" and self.tables:
            self._flush()
            self.tables[-1].rows.append([])
        elif tag in ("td", "th") and self.tables:
            self._flush()
            if not self.tables[-1].rows:
                self.tables[-1].rows.append([])
            cell = Cell(header=tag == "th")
            self.tables[-1].rows[-1].append(cell)
            self.containers.append(cell.blocks)
        elif tag == "hr":
            self._flush()
            self.containers[-1].append(Block("rule"))

    def handle_endtag(self, tag):  # noqa: C901 - one dispatch on the tag name
        """Close what the tag opened (unbalanced HTML closes the nearest match)."""
        if tag in SKIP_CONTENT:
            self.skip = max(0, self.skip - 1)
            return
        if self.skip:
            return
        if self.pre is not None:
            if tag == "pre":
                text = "".join(self.pre).strip("\n")
                self.containers[-1].append(Block("code", text=text, language=self.pre_language))
                self.pre = None
            return
        if tag in MARK_TAGS:
            for i in range(len(self.marks) - 1, -1, -1):
                if self.marks[i][0] == tag:
                    del self.marks[i]
                    break
        elif tag == "a":
            if self.links and self.links.pop() is None:
                self.mention_depth = max(0, self.mention_depth - 1)
        elif tag in BLOCK_TAGS:
            self._flush()
        elif re.fullmatch(r"h[1-6]", tag):
            self._flush()
            self.heading = 0
        elif tag in ("ul", "ol"):
            self._flush()
            while self.lists:
                closed = self.lists.pop()
                self._pop_items(closed)
                if closed.kind == tag:
                    break
        elif tag == "li":
            self._flush()
            if (
                self.lists
                and self.lists[-1].items
                and self.containers[-1] is self.lists[-1].items[-1]
            ):
                self.containers.pop()
        elif tag == "blockquote":
            self._flush()
            if len(self.containers) > 1:
                self.containers.pop()
        elif tag in ("td", "th"):
            self._flush()
            if self.tables and self.tables[-1].rows and self.tables[-1].rows[-1]:
                if self.containers[-1] is self.tables[-1].rows[-1][-1].blocks:
                    self.containers.pop()
        elif tag == "table":
            self._flush()
            if self.tables:
                table = self.tables.pop()
                cells = [c.blocks for row in table.rows for c in row]
                while len(self.containers) > 1 and any(self.containers[-1] is b for b in cells):
                    self.containers.pop()

    def _pop_items(self, block: Block) -> None:
        while len(self.containers) > 1 and any(self.containers[-1] is i for i in block.items):
            self.containers.pop()

    def handle_data(self, data):
        """Text: literal inside ``<pre>``, whitespace collapsed elsewhere."""
        if self.skip:
            return
        if self.pre is not None:
            self.pre.append(data)
            return
        self._add_text(_SPACE.sub(" ", data))

    def finish(self) -> list[Block]:
        """The parsed blocks, with open containers closed and whitespace trimmed."""
        if self.pre is not None:
            self.containers[-1].append(Block("code", text="".join(self.pre).strip("\n")))
            self.pre = None
        self._flush()
        return _prune(self.root)


def _trim(inlines: list[Inline]) -> list[Inline]:
    """Collapse spaces at paragraph edges and around line breaks; drop empty runs."""
    out: list[Inline] = []
    for i in inlines:
        if i.kind == "text":
            text = i.text
            if not out or out[-1].kind == "br" or out[-1].text.endswith(" "):
                text = text.lstrip(" ")
            if text:
                out.append(Inline("text", text, i.marks, i.href))
        else:
            if i.kind == "br" and out and out[-1].kind == "text":
                out[-1].text = out[-1].text.rstrip(" ")
                if not out[-1].text:
                    out.pop()
            out.append(i)
    while out and out[-1].kind == "text" and not out[-1].text.strip():
        out.pop()
    if out and out[-1].kind == "text":
        out[-1].text = out[-1].text.rstrip(" ")
    while out and out[-1].kind == "br":
        out.pop()
    while out and out[0].kind == "br":
        out.pop(0)
    return out


def _prune(blocks: list[Block]) -> list[Block]:
    """Drop empty lists, quotes and tables (nothing in them to show)."""
    out = []
    for b in blocks:
        if b.kind in ("ul", "ol"):
            b.items = [_prune(i) for i in b.items]
            b.items = [i for i in b.items if i]
            if not b.items:
                continue
        elif b.kind == "quote":
            b.children = _prune(b.children)
            if not b.children:
                continue
        elif b.kind == "table":
            for row in b.rows:
                for c in row:
                    c.blocks = _prune(c.blocks)
            b.rows = [r for r in b.rows if r]
            if not b.rows:
                continue
        out.append(b)
    return out
