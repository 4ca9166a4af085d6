"""A local Jira site for development and tests: ``manage.py jira_sandbox`` or ``python -m jira_adapter.sandbox``.

One process is one site, ``--flavour cloud`` (REST v3, ADF bodies, Basic
``email:API-token``) or ``--flavour dc`` (Data Center: REST v2, wiki-markup strings,
``Authorization: Bearer <personal access token>``), its data in a SQLite file (``--db``).
It follows ``jira-api.md`` (the reference note; § numbers below) and is never friendlier
than a real site. Example::

    python -m jira_adapter.sandbox --port 8201 --seed demo --db var/jira.sqlite3
    curl -u sync-bot@example.com:sandbox-token http://127.0.0.1:8201/rest/api/3/myself

``API`` is ``/rest/api/3`` on Cloud and ``/rest/api/2`` on Data Center.

=========================================================  ==========================================
endpoint                                                   behaviour (quirks in bold)
=========================================================  ==========================================
``GET API/serverInfo`` (also ``/rest/api/2/…`` on Cloud)   no credentials needed; ``deploymentType``
                                                           ``Cloud`` / ``Server``
``GET API/myself``                                         ``accountId`` (Cloud) or ``name``/``key``
                                                           (DC), ``timeZone``
``GET /rest/api/3/project/search``                         paged (≤ 100), ``query``, ``keys``,
                                                           ``action=create``, ``expand=issueTypes``
``GET API/project``, ``GET API/project/{idOrKey}``         DC's non-paged list; one project
``GET API/issue/createmeta/{p}/issuetypes[/{typeId}]``     paged (≤ 200, over it 400); **empty
                                                           without Create rights**; type ids differ
                                                           per project for the same name
``POST API/issue``                                         201 ``{id, key, self}``; ids numeric
                                                           strings with random gaps, keys ``P-n``;
                                                           §9.3 messages; ``properties`` stamped
``GET API/issue/{idOrKey}``                                ``fields``, ``expand=renderedFields``
                                                           (HTML, **human dates**), ``changelog``,
                                                           ``properties``; **a moved issue's old key
                                                           answers the issue under its new key**;
                                                           **embedded ``comment`` cut at 20**;
                                                           dates in the caller's zone
``PUT API/issue/{idOrKey}`` · ``DELETE``                   204 (200 with ``returnIssue=true``) · 204
``GET API/issue/{idOrKey}/changelog``                      paged
``GET/PUT/DELETE API/issue/{id}/properties[/{key}]``       PUT 201 new / 200 replaced
``GET/POST API/issue/{id}/comment``                        paged (≤ 100), ``orderBy`` ``[+-]created``
                                                           only; **ADF checked** (``INVALID_INPUT``,
                                                           "Comment body is not valid!"), 32,767;
                                                           **restricted comments left out**;
                                                           ``jsdPublic`` from ``sd.public.comment``
``GET/PUT/DELETE API/issue/{id}/comment/{cid}``            author (or admin) only: else 400
``GET API/comment/{cid}/properties/{key}``                 a property stamped at creation
``POST API/issue/{id}/attachments``                        multipart ``file``; **403 without
                                                           ``X-Atlassian-Token: no-check``**; 200
                                                           array; over the limit 413 (DC 404)
``GET API/attachment/meta`` · ``GET/DELETE …/{id}``        ``{enabled, uploadLimit}`` · metadata
                                                           with an **integer** ``id``
``GET /rest/api/3/attachment/content/{id}``                **303 to another host name**; bytes with
                                                           ``redirect=false``, 206 ``Range``, 416
``GET /secure/attachment/{id}/{name}`` (DC)                the bytes, same credentials
``GET/POST /rest/api/3/search/jql`` (Cloud)                ``nextPageToken``, ``isLast``, **no
                                                           total**, **ids only by default**,
                                                           **unbounded/empty JQL 400**, **arbitrary
                                                           order without ORDER BY**, **index lag**,
                                                           ``reconcileIssues`` ≤ 50, ``properties``
``GET/POST /rest/api/{2,3}/search`` (Cloud)                **410 Gone** (CHANGE-2046)
``GET/POST /rest/api/2/search`` (DC)                       ``startAt``/``maxResults``/``total``
``GET/POST /rest/servicedeskapi/request/{key}/comment``    JSM: string ``body``, ``public``; paged
                                                           ``start``/``limit``; service projects only
``/rest/webhooks/1.0/webhook[/{id}]``                      admin webhooks (Jira admins only)
``/rest/api/3/webhook``                                    403: apps only
=========================================================  ==========================================

JQL (:mod:`.jql`): ``project``, ``key``/``issuekey``, ``id``, ``issuetype``, ``status``,
``summary ~``, ``created``/``updated`` (quoted ``yyyy/MM/dd HH:mm`` **in the caller's
time zone**, epoch ms, ``-5m``, ``now()``; **bounds truncated to the minute**),
``issue.property[k].path``; ``AND``/``OR``/``NOT``/``IN``/``IS EMPTY``; ``ORDER BY``.
Errors as a site words them (unknown project, unknown key, bad date).

Every write bumps ``updated``, counts against the **per-issue write limit** (20 in 2 s,
100 in 30 s → 429 ``jira-per-issue-on-write``), reaches search after the index lag and
fires the webhooks (``jira:issue_created/updated/deleted``, ``comment_*`` together with
``jira:issue_updated`` ``issue_commented``, ``attachment_*``), signed with
``X-Hub-Signature: sha256=<HMAC of the body>`` when the webhook has a secret (§8.2).

Control endpoints (no authentication, never counted or faulted)
----------------------------------------------------------------
``POST /sandbox/faults`` ``{"status": 429, "retry_after": 2, "reason": "jira-burst-based",
"count": 3, "paths": "/rest/api/3/issue", "methods": "POST", "latency_ms": 20}`` (``DELETE``
clears; 429/503 carry ``Retry-After``, ``X-RateLimit-*``, ``RateLimit-Reason``; 401 the
non-envelope body). ``GET|DELETE /sandbox/stats``: requests by ``METHOD /path`` (``{id}``,
``{key}``) and ``total``. ``POST /sandbox/clock`` ``{"offset_seconds": N}``.
``POST /sandbox/settings`` with any of: ``index_lag_seconds`` (Cloud 1, DC 0),
``upload_limit`` (bytes; Cloud 1 GiB, DC 10 MiB), ``attachments_enabled``,
``embedded_comments`` (20), ``comment_limit`` (5000), ``attachment_limit`` (2000),
``per_issue_writes``, ``rfc2231_fails`` (a ``filename*=`` part answers 500, as DC 7 did),
``webhook_delay_seconds``, ``webhook_duplicates``, ``webhook_retry_delays`` ([1, 2, 4]),
``indexed_properties`` (``["*"]``; ``[]`` is a site where no app declares its properties
for JQL, so ``issue.property[…]`` clauses find nothing). ``POST /sandbox/users``
``{"email", "token", "display_name", "time_zone", "active", "admin", "browse": ["TEST"],
"create": [], "attach", "groups", "expired"}`` creates or changes a user (``GET`` lists).
``POST /sandbox/projects`` ``{"key", "name", "type", "issuetypes": ["Task", "Sub-task!subtask"]}``
creates a project or replaces its types (a removed type stays on its issues).
``POST /sandbox/move`` ``{"issue": idOrKey, "project": "OPS", "by": email}`` moves an
issue: new key, ``Key``/``project`` changelog items, ``jira:issue_updated``.
``POST /sandbox/webhooks`` registers a webhook like the admin API (``GET`` lists);
``GET /sandbox/webhooks/deliveries`` shows recent delivery attempts.

Users, projects and the demo seed are described in :mod:`.seed`.
"""
