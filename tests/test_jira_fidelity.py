"""The measured formatting fidelity table, ServiceNow ↔ Jira: each cell is computed by converting
a sample and inspecting the result; the table is written to ``test-artifacts/jira-fidelity.md``.

Columns: a ServiceNow journal entry (``[code]<html>[/code]``) written to Jira Cloud (ADF) and
to Jira Data Center (wiki markup); a Jira comment's rendered HTML (the form Jira's
``expand=renderedBody`` returns) read into a ServiceNow comment, and a rendered description
read into ServiceNow's plain-text description.
"""

from __future__ import annotations

import json

from jira_adapter import adf, wiki
from jira_adapter.html_out import rendered_to_body, rendered_to_text
from jira_adapter.markup import body_to_blocks
from tests.conftest import ARTIFACTS

SITE = "https://acme.atlassian.net"
KEPT = "kept"


def nodes(doc: dict):
    """Every node of an ADF document, depth first."""
    stack = [doc]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.get("content") or []))


def adf_mark(mark: str, text: str):
    def check(doc):
        for n in nodes(doc):
            if n.get("type") == "text" and text in n.get("text", ""):
                if any(m["type"] == mark for m in n.get("marks", [])):
                    return KEPT
        return "lost"

    return check


def adf_node(kind: str, text: str = "", label: str = KEPT):
    def check(doc):
        for n in nodes(doc):
            if n.get("type") == kind and (not text or text in json.dumps(n)):
                return label
        return "lost"

    return check


def adf_text(text: str, label: str):
    return lambda doc: label if text in json.dumps(doc) else "lost"


def has(*pieces: str, label: str = KEPT):
    return lambda out: label if all(p in out for p in pieces) else "lost"


# feature, ServiceNow [code] HTML, Jira rendered HTML, then one check per column.
ROWS = [
    ("bold", "<b>bold</b>", "<p><b>bold</b></p>",
     adf_mark("strong", "bold"), has("*bold*"), has("<strong>bold</strong>"), has("bold", label="text only")),
    ("italic", "<i>italic</i>", "<p><em>italic</em></p>",
     adf_mark("em", "italic"), has("_italic_"), has("<em>italic</em>"), has("italic", label="text only")),
    ("links", "<a href='https://example.com/rb'>runbook</a>",
     '<p><a href="https://example.com/rb" class="external-link" rel="nofollow">runbook</a></p>',
     adf_mark("link", "runbook"), has("[runbook|https://example.com/rb]"),
     has('<a href="https://example.com/rb" rel="noopener noreferrer">runbook</a>'),
     has("runbook (https://example.com/rb)", label="as text: runbook (url)")),
    ("lists", "<ul><li>first</li><li>second<ol><li>step</li></ol></li></ul>",
     '<ul class="alternate" type="square"><li>first</li><li>second<ol><li>step</li></ol></li></ul>',
     adf_node("orderedList", "step"), has("* first", "*# step"), has("<ul><li>first</li>", "<ol><li>step</li></ol>"),
     has("- first", "  1. step", label="as text: - / 1. items")),
    ("headings", "<h2>Impact</h2>", '<h2><a name="Impact"></a>Impact</h2>',
     adf_node("heading", "Impact"), has("h2. Impact"), has("<h2>Impact</h2>"), has("Impact", label="text only")),
    ("code", "<pre>systemctl restart auth</pre> and <code>auth-svc</code>",
     '<div class="code panel"><div class="codeContent panelContent"><pre class="code-bash">systemctl restart auth</pre>'
     "</div></div><p>and <tt>auth-svc</tt></p>",
     lambda d: KEPT if adf_node("codeBlock")(d) == KEPT and adf_mark("code", "auth-svc")(d) == KEPT else "lost",
     has("{noformat}\nsystemctl restart auth\n{noformat}", "{{auth-svc}}"),
     has("<pre><code>systemctl restart auth</code></pre>", "<code>auth-svc</code>"),
     has("systemctl restart auth", "and auth-svc", label="text only")),
    ("quotes", "<blockquote><p>quoted</p></blockquote>", "<blockquote><p>quoted</p></blockquote>",
     adf_node("blockquote", "quoted"), has("{quote}\nquoted\n{quote}"), has("<blockquote><p>quoted</p></blockquote>"),
     has("> quoted", label="as text: > lines")),
    ("tables", "<table><tr><th>host</th><th>state</th></tr><tr><td>db1</td><td>down</td></tr></table>",
     "<div class='table-wrap'><table class='confluenceTable'><tbody><tr><th class='confluenceTh'>host</th>"
     "<th class='confluenceTh'>state</th></tr><tr><td class='confluenceTd'>db1</td><td class='confluenceTd'>down</td>"
     "</tr></tbody></table></div>",
     adf_node("tableHeader", "host"), has("||host||state||", "|db1|down|"),
     has("<th>host</th>", "<td>db1</td>"), has("host | state\ndb1 | down", label="as text: a line per row")),
    ("line breaks", "line one<br>line two", "<p>line one<br/>line two</p>",
     adf_node("hardBreak"), has("line one\nline two"), has("line one\nline two", label="kept (plain text)"),
     has("line one\nline two")),
    ("mentions", "<p>@Dana Ops please check</p>",
     '<p><a href="https://acme.atlassian.net/secure/ViewProfile.jspa?accountId=5f1a" class="user-hover" '
     'data-account-id="5f1a">Dana Ops</a> please check</p>',
     adf_text("@Dana Ops", "as text: @Name (nobody notified)"), has("@Dana Ops", label="as text: @Name"),
     has("@Dana Ops please check", label="as text: @Name"), has("@Dana Ops", label="as text: @Name")),
    ("inline images", "<p><img src='/sys_attachment.do?sys_id=0a1b' alt='router.png'></p>",
     '<p><span class="image-wrap"><img src="/rest/api/3/attachment/content/10000" alt="router.png"/></span></p>',
     adf_text("[image: router.png]", "as text: [image: name]"), has("\\[image: router.png\\]", label="as text: [image: name]"),
     has("[image: router.png]", label="as text: [image: name]"), has("[image: router.png]", label="as text: [image: name]")),
]  # fmt: skip
HEADER = (
    "| Formatting | ServiceNow → Jira Cloud (ADF) | ServiceNow → Jira DC (wiki) "
    "| Jira → ServiceNow comment | Jira → ServiceNow description |"
)


def measure() -> list[tuple[str, str, str, str, str]]:
    """Each row's feature and the four measured cells."""
    table = []
    for feature, sn_html, jira_html, to_adf, to_wiki, to_comment, to_text in ROWS:
        blocks = body_to_blocks(f"[code]{sn_html}[/code]")
        doc = adf.doc(blocks)
        assert adf.problems(doc) == [], feature
        table.append(
            (
                feature,
                to_adf(doc),
                to_wiki(wiki.markup(blocks)),
                to_comment(rendered_to_body(jira_html, base=SITE)),
                to_text(rendered_to_text(jira_html, base=SITE)),
            )
        )
    return table


def test_fidelity_table_is_measured_and_written():
    table = measure()
    lines = [HEADER, "|" + "---|" * 5] + ["| " + " | ".join(row) + " |" for row in table]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "jira-fidelity.md").write_text(
        "# Formatting fidelity, ServiceNow ↔ Jira (measured by tests/test_jira_fidelity.py)\n\n"
        + "\n".join(lines)
        + "\n\nServiceNow's description is a plain-text field, so Jira descriptions arrive as text."
        " Mentions are never created (a name is not an account); inline images travel as"
        " attachments and leave their name in the text.\n",
        encoding="utf-8",
    )
    assert all("lost" not in row for row in table), table
