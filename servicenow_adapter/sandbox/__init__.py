"""A local ServiceNow instance for development and tests: ``manage.py servicenow_sandbox``.

It speaks the parts of the REST API the console uses, with the same envelopes, headers
and quirks (see ``servicenow_adapter/README.md`` for the sources):

Table API ``/api/now[/v1|/v2]/table/{table}[/{sys_id}]``
    GET (list / one), POST (201 + ``Location``), PUT, PATCH, DELETE (204), HEAD;
    tables ``incident``, ``sys_journal_field``, ``sys_user``, ``sys_user_group``,
    ``sys_attachment``, ``sys_user_role``, ``sys_user_has_role`` (read-only unless admin). ``sysparm_query`` (``^``, ``^OR``, ``^NQ``, ``ORDERBY``,
    ``ORDERBYDESC``, ``=``, ``!=``, ``>``, ``>=``, ``<``, ``<=``, ``LIKE``, ``NOT LIKE``,
    ``STARTSWITH``, ``ENDSWITH``, ``IN``, ``NOT IN``, ``ISEMPTY``, ``ISNOTEMPTY``,
    ``BETWEEN``, ``SAMEAS``; unknown fields are dropped; no ORDERBY means a random order,
    and rows that tie on every ORDERBY field come in a random order too),
    ``sysparm_fields`` (dot-walk one level), ``sysparm_limit``, ``sysparm_offset``,
    ``sysparm_display_value`` (false / true / all), ``sysparm_exclude_reference_link``,
    ``sysparm_no_count``, ``sysparm_suppress_pagination_header``; ``X-Total-Count`` and
    ``Link`` (first, prev even at offset 0 as recorded, next, last); the v1 "404 on an
    empty result" quirk. Writing ``comments`` / ``work_notes`` appends a
    ``sys_journal_field`` row; every change bumps ``sys_mod_count`` and
    ``sys_updated_on`` and sets ``sys_updated_by`` to the caller's user_name. ``sys_id``s
    are random (no order); only the journal fields' display value knows the order entries
    were written in, even within one second. Numbers
    start at INC0010001. Resolved/Closed without ``close_code`` and ``close_notes`` is a
    403 data-policy error. ``short_description`` is cut to 160 characters.
Attachment API ``/api/now[/v1]/attachment``
    list (``sysparm_query`` on sys_attachment), ``/{sys_id}`` metadata and DELETE,
    ``/{sys_id}/file`` streamed download (``Content-Disposition``,
    ``X-Attachment-Metadata``), ``POST /file?table_name=&table_sys_id=&file_name=`` raw
    upload (``Content-Type`` mandatory, chunked bodies accepted), ``POST /upload``
    multipart. ``hash`` is the SHA-256 of the bytes; ``state`` turns pending → available
    a second after upload.
Authentication
    Basic, and Bearer tokens from ``POST /oauth_token.do`` (form-encoded ``password`` and
    ``refresh_token`` grants, client id/secret from ``--oauth-client-id`` /
    ``--oauth-client-secret``, lifetime ``--token-lifetime``). 401 bodies as recorded.
Record page
    ``/nav_to.do?uri=incident.do%3Fsys_id%3D<sys_id>`` and ``/incident.do?sys_id=…``: a
    plain HTML page (no login) with number, short description, description, public
    comments and attachment file names.

Control endpoints (no authentication; the sandbox listens on 127.0.0.1 by default)
-------------------------------------------------------------------------------------
``POST /sandbox/faults`` with JSON, ``DELETE /sandbox/faults`` to clear, ``GET`` to read::

    {"latency_ms": 20,          # added to every API request until cleared
     "status": 429,             # any HTTP status: 401, 403, 404, 429, 500, 503, 202 ...
     "retry_after": 1,          # with 429: Retry-After and X-RateLimit-* headers; absent: a bare 429
     "rate_limit_reset": 2,     # with 429: X-RateLimit-Reset = now + this many seconds
     "count": 3,                # how many requests get the fault; absent = until cleared
     "hang": false,             # hold the request (hang_seconds, default 30, or until cleared)
     "html": false,             # answer the "Your instance is hibernating" HTML page
     "quota": false,            # answer "Transaction cancelled: maximum execution time exceeded"
     "paths": "/api/now/attachment",   # only paths starting with one of these (comma list)
     "methods": "GET"}          # only these methods (comma list)

``GET /sandbox/stats`` counts API requests by ``METHOD /path`` (sys_ids shown as
``{sys_id}``) plus ``total``; ``DELETE /sandbox/stats`` resets them.

``POST /sandbox/users`` ``{"user_name": "x", "password": "…", "name": "X Y", "active": true,
"acl": {"sys_journal_field": "deny" | "hide" | "empty" | "hide:<encoded query>" | "allow"}}``
creates or changes a user (``deny``: 403 on that table; ``hide``: rows silently left out,
after the limit is applied, while ``X-Total-Count`` still counts them, as ACLs do;
``hide:category=network`` hides only the matching rows, from lists (still counted), single
reads, writes and uploads (404); ``empty``: 200 with no rows and ``X-Total-Count: 0``, as
``sys_journal_field`` answers a user without its read ACL). ``"roles": ["itil"]`` sets its
roles (``sys_user_has_role``; a new user without the key gets ``itil``): creating or
updating incidents and attaching files to them needs ``admin``, ``itil`` or
``sn_incident_write`` (403 otherwise), as in a default instance. ``GET /sandbox/users`` lists them.

``POST /sandbox/tokens/expire`` ``{"kind": "access" | "refresh" | "all"}`` expires OAuth
tokens now. ``POST /sandbox/clock`` ``{"offset_seconds": N, "frozen": true|false}`` shifts
the instance clock and/or stops it on the current second. ``POST /sandbox/limits``
``{"max_attachment_bytes": N | null}`` sets ``com.glide.attachment.max_size``: a larger
upload is read and refused with 400 "Failed to create the attachment" (``DELETE`` restores
the start-up value).

Command-line knobs (``manage.py servicenow_sandbox``): ``--freeze-clock``, ``--hide
TABLE=QUERY`` (repeatable, for ``--user``), ``--hide-journal``, ``--retry-after SECONDS``
(every request 429), ``--hibernate``, ``--fault JSON``, ``--max-attachment-bytes N``.

Where things are
----------------
``app``            the WSGI application and router (Werkzeug routing): counting, latency, faults, dispatch
``wire``           requests and responses on the wire (Werkzeug), common headers, error envelopes
``table_api``      the Table API endpoint
``attachment_api`` the Attachment API endpoints (list, metadata, download, uploads)
``render``         reading records out: display modes, dot-walking, query, order, paging headers
``rules``          writing records: numbers, mod counts, journal entries, data policy, attachment settling
``auth``           Basic/Bearer authentication, ``/oauth_token.do``, table rights (ACLs)
``roles``          users' roles (``sys_user_has_role``) and the writes they allow
``faults``         injected faults and how a faulted request is answered
``control``        the ``/sandbox/…`` control endpoints
``pages``          the HTML pages (incident list, record page, comment form)
``store`` / ``query`` / ``schema`` / ``seed`` / ``server``  data, encoded queries, tables, demo data, gunicorn
"""
