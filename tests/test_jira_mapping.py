"""Unit tests of the Jira mapping: replica bodies ↔ ADF / wiki markup / sanitised HTML, replicas,
keys and webhooks (pure functions; no HTTP)."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from jira_adapter import adf, mapping, wiki
from jira_adapter.adapter import JiraAdapter
from jira_adapter.html_out import rendered_to_body, rendered_to_text
from jira_adapter.markup import body_to_blocks, has_formatting, html_to_blocks
from trackers.errors import TrackerBadRequest
from trackers.replica import replica_validate

SITE = "https://acme.atlassian.net"
RICH = (
    "Hello *team* (INC-42)\nsecond line\n\n"
    "[code]<h2>Impact</h2><p><b>Bold</b>, <i>it</i>, <u>under</u>, <s>gone</s>, x<sup>2</sup>, "
    "<code>auth-svc</code>, <b><code>both</code></b>, <a href='https://e.com/rb?a=1|2'>runbook</a>, "
    "<a href='javascript:alert(1)'>evil</a></p>"
    "<ul><li>one</li><li><ul><li>nested first</li></ul></li><li>two<ol><li>deep</li></ol></li></ul>"
    "<blockquote><h3>in quote</h3><p>quoted</p><blockquote><p>twice</p></blockquote>"
    "<table><tr><td>t</td></tr></table></blockquote>"
    "<table><tr><th>host</th><th>state</th></tr><tr><td>db1<br>db2</td></tr></table>"
    "<pre class='language-sql'>SELECT 1\n  FROM dual;</pre><pre></pre><p><img src='/sys_attachment.do?sys_id=1' alt='shot.png'></p>"
    "<hr><script>alert(2)</script>[/code]\nThanks!"
)


# -- ServiceNow → blocks ------------------------------------------------------------------
def test_plain_text_is_literal_paragraphs_and_line_breaks():
    blocks = body_to_blocks("one *two*\nthree\n\n\nfour")
    assert [b.kind for b in blocks] == ["p", "p"]
    assert [i.kind for i in blocks[0].inlines] == ["text", "br", "text"]
    assert blocks[0].inlines[0].text == "one *two*" and not has_formatting(blocks)


def test_code_segments_are_html_and_the_rest_text():
    blocks = body_to_blocks("before\n[code]<b>x</b>[/code]\nafter")
    assert [b.kind for b in blocks] == ["p", "p", "p"]
    assert blocks[1].inlines[0].marks == ("strong",) and has_formatting(blocks)


def test_links_other_than_http_keep_only_their_text():
    (block,) = html_to_blocks(
        "<a href='javascript:x()'>a</a> <a href='/browse/T-1'>b</a>", base=SITE
    )
    assert block.inlines[0].marks == () and block.inlines[0].text == "a "
    assert block.inlines[1].href == f"{SITE}/browse/T-1"


# -- ADF (Cloud) ----------------------------------------------------------------------------
def test_rich_body_gives_valid_adf():
    doc = adf.doc(body_to_blocks(RICH))
    assert adf.problems(doc) == []
    kinds = [n["type"] for n in doc["content"]]
    assert kinds[:2] == ["paragraph", "heading"]
    for wanted in ("heading", "bulletList", "blockquote", "table", "codeBlock", "rule"):
        assert wanted in kinds
    text = json.dumps(doc)
    assert "alert" not in text and "javascript" not in text
    assert '"text": "Hello *team* (INC-42)"' in text


def test_adf_marks_follow_the_rules():
    doc = adf.doc(
        body_to_blocks(
            "[code]<b><code>x</code></b> <a href='https://e.com'><code>y</code></a>[/code]"
        )
    )
    texts = [n for n in doc["content"][0]["content"] if n["type"] == "text"]
    assert texts[0]["marks"] == [{"type": "code"}]  # code never with strong
    assert texts[-1]["marks"] == [{"type": "code"}]  # nor with a link (Atlassian drops the pair)


def test_adf_list_item_starts_with_a_paragraph_and_quote_holds_no_heading():
    doc = adf.doc(
        body_to_blocks(
            "[code]<ul><li><ol><li>x</li></ol></li></ul><blockquote><h1>h</h1></blockquote>[/code]"
        )
    )
    item = doc["content"][0]["content"][0]
    assert item["content"][0] == {"type": "paragraph", "content": []}
    quote = doc["content"][1]
    assert [n["type"] for n in quote["content"]] == ["paragraph"]
    assert adf.problems(doc) == []


@pytest.mark.parametrize(
    "bad, reason",
    [
        ({"type": "doc", "content": []}, "version"),
        ({"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": ""}]}]}, "non-empty"),
        ({"type": "doc", "version": 1, "content": [{"type": "bulletList", "content": []}]}, "at least one"),
        ({"type": "doc", "version": 1, "content": [{"type": "heading", "attrs": {"level": 7}, "content": []}]}, "1-6"),
        ({"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [
            {"type": "text", "text": "x", "marks": [{"type": "code"}, {"type": "strong"}]}]}]}, "code combines"),
        ({"type": "doc", "version": 1, "content": [{"type": "codeBlock", "content": [
            {"type": "text", "text": "x", "marks": [{"type": "em"}]}]}]}, "unmarked"),
        ({"type": "doc", "version": 1, "content": [{"type": "blockquote", "content": [
            {"type": "heading", "attrs": {"level": 1}, "content": []}]}]}, "not allowed"),
        ({"type": "doc", "version": 1, "content": [{"type": "bogus"}]}, "not allowed"),
    ],
)  # fmt: skip
def test_adf_problems_name_what_is_wrong(bad, reason):
    found = adf.problems(bad)
    assert found and any(reason in f for f in found), found


def test_adf_text_fallback():
    doc = adf.doc(body_to_blocks("a\nb\n\n[code]<p>c</p>[/code]"))
    assert adf.to_text(doc) == "a\nb\n\nc"


# -- wiki markup (Data Center) -----------------------------------------------------------------
def test_wiki_escapes_text_from_servicenow():
    assert (
        wiki.escape("a*b_c {d} [e|f] -x- INC-1 a - b")
        == r"a\*b\_c \{d\} \[e\|f\] \-x\- INC-1 a - b"
    )
    assert wiki.escape("#1\nh2. no") == "\\#1\n\\h2. no"


def test_rich_body_gives_wiki_markup():
    text = wiki.markup(body_to_blocks(RICH))
    for piece in ("h2. Impact", "*Bold*", "_it_", "+under+", "-gone-", "^2^", "{{auth-svc}}",
                  "[runbook|https://e.com/rb?a=1%7C2]", "* one", "** nested first", "*# deep",
                  "{quote}", "||host||state||", "|db1 \\\\ db2|", "{code:sql}\nSELECT 1\n  FROM dual;\n{code}",
                  "\\[image: shot.png\\]", "----", "Hello \\*team\\* (INC-42)\nsecond line"):  # fmt: skip
        assert piece in text, piece
    assert "alert" not in text and "javascript" not in text


# -- Jira → ServiceNow ------------------------------------------------------------------------
JIRA_RENDERED = (
    '<p><b>bold</b> <a href="/browse/TEST-2">TEST-2</a> '
    '<a href="https://x/secure/ViewProfile.jspa?accountId=5f" class="user-hover" data-account-id="5f">Dana Ops</a>'
    '<br/>next <a href="javascript:alert(1)" onclick="x()">bad</a></p>'
    '<ul class="alternate" type="square"><li>one</li></ul><script>alert(2)</script>'
    '<p><span class="image-wrap"><img src="/rest/api/3/attachment/content/10000" alt="router.png" onerror="x()"/></span></p>'
)


def test_rendered_comment_is_sanitised_html_in_a_code_segment():
    body = rendered_to_body(JIRA_RENDERED, base=SITE)
    assert body.startswith("[code]") and body.endswith("[/code]")
    assert "<strong>bold</strong>" in body
    assert f'<a href="{SITE}/browse/TEST-2" rel="noopener noreferrer">TEST-2</a>' in body
    assert "@Dana Ops<br>" in body and "[image: router.png]" in body
    for bad in ("script", "javascript", "onclick", "onerror", "<img", "class="):
        assert bad not in body


def test_rendered_plain_comment_stays_plain_text():
    smiley = '<img class="emoticon" src="/images/icons/emoticons/smile.png" alt="(smile)"/>'
    assert rendered_to_body(f"<p>ok {smiley}</p>", base=SITE) == "ok (smile)"
    assert (
        rendered_to_body("<p>Hi<br/>there</p><p>bye &amp; out</p>", base=SITE)
        == "Hi\nthere\n\nbye & out"
    )


def test_code_tags_typed_in_jira_never_open_html_in_servicenow():
    for rendered in ("<p>[code]<b>x</b>[/CODE]</p>", "<p><b>a</b> [code]&lt;script&gt;[/code]</p>"):
        body = rendered_to_body(rendered, base=SITE)
        inner = body.removeprefix("[code]").removesuffix("[/code]")
        assert "[code]" not in inner.lower() and "[/code]" not in inner.lower()
        assert "<script" not in body


def test_rendered_description_is_plain_text():
    text = rendered_to_text(JIRA_RENDERED, base=SITE)
    assert text == (
        f"bold TEST-2 ({SITE}/browse/TEST-2) @Dana Ops\nnext bad\n\n- one\n\n[image: router.png]"
    )


# -- bodies, limits, summaries --------------------------------------------------------------
def test_jira_body_refuses_text_over_the_limit_and_names_it():
    with pytest.raises(TrackerBadRequest, match="32,767"):
        mapping.jira_body("x" * 33_000, flavour="dc", what="The comment")
    with pytest.raises(TrackerBadRequest, match="The comment is too long"):
        mapping.jira_body("y\n" * 16_000, flavour="cloud", what="The comment")  # 32,000 raw
    assert (
        mapping.jira_body("ok", flavour="dc", what="The comment", author="Beth")
        == "\\[Beth wrote\\]\n\nok"
    )


def test_summary_is_one_line_of_at_most_255():
    assert mapping.summary_line("a\nb\t c") == "a b c"
    assert (
        len(mapping.summary_line("z" * 400)) == 255 and mapping.summary_line("") == "(no summary)"
    )


def issue(**fields) -> dict:
    base = {
        "summary": "Mail down", "issuetype": {"name": "Task"}, "updated": "2026-03-02T09:15:44.120+0000",
        "description": None, "attachment": [
            {"id": "501", "filename": "log.txt", "mimeType": "text/plain", "size": 3, "author": {"accountId": "human"}},
            {"id": "502", "filename": "ours.txt", "mimeType": "text/plain", "size": 3, "author": {"accountId": "bot"}},
        ],
    }  # fmt: skip
    base.update(fields)
    return {"id": "10042", "key": "OPS-7", "fields": base,
            "renderedFields": {"description": "<p>Users <b>cannot</b> log in</p>"}}  # fmt: skip


def test_issue_to_replica_is_valid_and_leaves_out_our_own_writes():
    comments = [
        {"id": "9", "author": {"accountId": "human", "displayName": "Dana"}, "created": "2026-03-02T09:10:00.000+0000",
         "renderedBody": "<p>first</p>"},
        {"id": "10", "author": {"accountId": "bot", "displayName": "Sync"}, "created": "2026-03-02T09:11:00.000+0000",
         "renderedBody": "<p>echo</p>"},
        {"id": "11", "author": {"accountId": "human", "displayName": "Dana"}, "created": "2026-03-02T09:12:00.000+0000",
         "renderedBody": "<p>secret</p>", "visibility": {"type": "role", "value": "Developers"}},
    ]  # fmt: skip
    replica = replica_validate(
        mapping.issue_to_replica(
            issue(), comments, base=SITE, own_account="bot", sha256s={"501": "a" * 64}
        )
    )
    assert replica["entity"] == {
        "id": "10042",
        "key": "OPS-7",
        "url": f"{SITE}/browse/OPS-7",
        "type": "task",
    }
    assert replica["description"] == "Users cannot log in"
    assert [(c["id"], c["public"]) for c in replica["comments"]] == [("9", True), ("11", False)]
    assert [a["id"] for a in replica["attachments"]] == ["501"]
    assert replica["mod_count"] == 1772442944 and replica["updated"] == "2026-03-02T09:15:44.120Z"


# -- keys and webhooks ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "typed, key", [("test-1", "TEST-1"), (" Ops_2-10 ", "OPS_2-10"), ("10042", "10042")]
)
def test_normalize_key(typed, key):
    assert JiraAdapter.normalize_key(typed) == key


def test_key_problem():
    assert JiraAdapter.key_problem("TEST-1") is None
    assert JiraAdapter.key_problem(f"{SITE}/browse/OPS-7") is None
    assert "TEST-1" in JiraAdapter.key_problem("INC 1")
    assert JiraAdapter.key_problem("TEST-0")


def test_parse_webhook():
    body = json.dumps(
        {"webhookEvent": "comment_created", "issue": {"id": "10042", "key": "OPS-7"}}
    ).encode()
    assert [h.entity_id for h in JiraAdapter.parse_webhook(body)] == ["10042"]
    assert (
        JiraAdapter.parse_webhook(b'{"webhookEvent": "attachment_created", "attachment": {}}') == []
    )
    for bad in (
        b"not json",
        b'{"issue": {"id": "1"}}',
        b'{"webhookEvent": "x", "issue": {"id": "1 OR 2"}}',
    ):
        with pytest.raises(ValueError):
            JiraAdapter.parse_webhook(bad)


def test_verify_webhook_signature():
    body, secret = b'{"webhookEvent": "x"}', "s3cret"
    good = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    JiraAdapter.verify_webhook_signature(body, good, secret)
    JiraAdapter.verify_webhook_signature(body, None, "")  # no secret configured: nothing to check
    with pytest.raises(ValueError, match="no X-Hub-Signature"):
        JiraAdapter.verify_webhook_signature(body, None, secret)
    with pytest.raises(ValueError, match="does not match"):
        JiraAdapter.verify_webhook_signature(body + b" ", good, secret)


# -- error envelope ---------------------------------------------------------------------------
def response(status: int, body: bytes, **headers):
    import requests

    r = requests.Response()
    r.status_code, r._content = status, body
    r.headers.update({"Content-Type": "application/json", **headers})
    return r


def test_errors_read_both_parts_of_the_envelope_and_retry_after():
    from jira_adapter import errors
    from trackers.errors import TrackerAuthenticationError, TransientTrackerError

    payload = {"errorMessages": [], "errors": {"comment": "Comment body is not valid!"}}
    err = errors.error_for(
        response(400, b""), payload, "POST /rest/api/3/issue/1/comment", site=SITE
    )
    assert (
        isinstance(err, TrackerBadRequest) and err.detail == "comment: Comment body is not valid!"
    )
    err = errors.error_for(response(429, b"", **{"Retry-After": "7", "RateLimit-Reason": "jira-burst-based"}),
                           None, "GET /x", site=SITE)  # fmt: skip
    assert (
        isinstance(err, TransientTrackerError)
        and err.retry_after == 7.0
        and "jira-burst-based" in err.message
    )
    err = errors.error_for(
        response(401, b""), {"message": "Client must be authenticated"}, "GET /x", site=SITE
    )
    assert isinstance(err, TrackerAuthenticationError) and "authenticated" in err.detail


def test_the_plug_registers_and_reads_its_environment(settings):
    from trackers.registry import adapter_class

    settings.TRACKER_ADAPTERS = {
        **settings.TRACKER_ADAPTERS,
        "jira": "jira_adapter.adapter.JiraAdapter",
    }
    cls = adapter_class("jira")
    assert (cls.tracker, cls.entity_label, cls.key_example, cls.has_projects) == (
        "jira",
        "issue",
        "TEST-1",
        True,
    )
    assert cls.environment_config() is None
    settings.JIRA_INSTANCE_URL, settings.JIRA_AUTH = "https://acme.atlassian.net", "cloud"
    settings.JIRA_EMAIL, settings.JIRA_API_TOKEN = "bot@acme.com", "tok"
    config = cls.environment_config()
    assert (config.tracker, config.username, config.from_env) == ("jira", "bot@acme.com", True)
    assert "tok" not in repr(cls.from_config(config))
