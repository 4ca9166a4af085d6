"""Everything the sync engine writes or calls out for, one module per stage (issue 9).

The path of one change, and where each step lives:

* ``exalate``: :func:`entity_exalate` records an ExalateRequest; the worker resolves the
  key to an entity, gets or creates the one twin of (connection, entity) and scans it.
* ``detect``: polling from the connection's watermark (:func:`connection_detect_changes`)
  and the tracker's webhook (:func:`webhook_receive`) mark twins whose entity changed.
* ``scan``: :func:`twin_scan` reads the local entity and queues an outgoing replica with
  what the other side lacks, never what the sync wrote itself (no echo).
* ``deliver``: :func:`connection_deliver` sends due outgoing events in order through the
  connection's peer (``sync.peers``); a node without URL polls (:func:`connection_poll`),
  a node with one answers polls (:func:`poll_answer`).
* ``receive``: :func:`messages_receive` checks each message (``sync.protocol``), stores it
  at most once and answers at once; acknowledgements are applied on receipt.
* ``apply``: :func:`twin_apply` applies a twin's incoming replicas strictly in order with
  the Basic rules (``sync.rules``), exactly once across crashes, and acknowledges them.
* ``attachments``: bytes streamed through temp files, sha256 checked; pushed by a node
  without URL, re-pushed when the receiver still waits for them.
* ``failures``: entity- and connection-level errors, Retry and Resolve; ``remote_errors``:
  a failure on the other node shown on both (issue 12).
* ``unexalate`` / ``connect``: stop syncing a twin on both nodes; link two existing
  entities (issue 12). ``operations``: rename, live check, Activate's held changes, bulk
  Resolve.
* ``drain``: re-nudges work whose Celery message was lost.

No database transaction is ever held across an HTTP call: each step commits before the
next tracker or node call. Work is nudged through ``sync.nudge`` only, after commit;
backoff is ``sync.nudge.backoff_seconds``. The tracker is reached through
``connections.selectors.tracker_adapter_get()`` (the ``trackers`` registry), never an
adapter import.
"""

from ..nudge import backoff_seconds
from ..peers import CHUNK, WAITING_FOR_PUSH
from ..protocol import MESSAGES_PATH, NO_ENTITY, POLL_PATH, PROTOCOL
from .apply import twin_apply
from .attachments import (
    MAX_PUSHED_BYTES,
    attachment_stream_for_remote,
    attachments_needed,
    pushed_attachment_path,
    pushed_attachment_store,
    staging_dir,
)
from .base import (
    OPEN_EVENT_STATUSES,
    PermanentSyncError,
    SyncRefused,
    TransientSyncError,
    state_for,
    twin_status_refresh,
)
from .bulk import (  # issue 13
    bulk_cancel,
    bulk_drain,
    bulk_exalate_start,
    bulk_progress,
    bulk_run_process,
    bulk_unexalate_start,
)
from .bulk_connect import (  # issue 13
    bulk_connect_confirm,
    bulk_connect_result_csv,
    bulk_connect_upload,
)
from .connect import connect_answer, entity_connect  # issue 12
from .deliver import (
    POLL_HANDOUT_LEASE,
    connection_deliver,
    connection_poll,
    max_message_bytes,
    poll_answer,
    poll_remotes_all,
)
from .detect import (
    connection_detect_changes,
    detect_changes_all,
    twin_request_scan,
    webhook_receive,
)
from .drain import sync_drain
from .exalate import entity_exalate, exalate_request_process
from .failures import (
    connection_error_raise,
    connection_retry,
    error_resolve,
    error_retry,
    twin_retry,
)
from .operations import (  # issue 12
    connection_activated,
    connection_check,
    connection_rename,
    errors_resolve,
)
from .receive import messages_receive
from .scan import twin_scan
from .triggers import (  # issue 13
    ConfirmAll,
    query_check,
    trigger_delete,
    trigger_detect,
    trigger_hint_process,
    trigger_preview,
    trigger_save,
    trigger_set_active,
    triggers_detect_all,
    triggers_webhook_hint,
    twins_scan_batch,
)
from .unexalate import (  # issue 12
    connection_unexalate_all,
    live_twins,
    twin_unexalate,
    unexalates_sweep,
)

__all__ = [
    "ConfirmAll",
    "bulk_cancel",
    "bulk_connect_confirm",
    "bulk_connect_result_csv",
    "bulk_connect_upload",
    "bulk_drain",
    "bulk_exalate_start",
    "bulk_progress",
    "bulk_run_process",
    "bulk_unexalate_start",
    "query_check",
    "trigger_delete",
    "trigger_detect",
    "trigger_hint_process",
    "trigger_preview",
    "trigger_save",
    "trigger_set_active",
    "triggers_detect_all",
    "triggers_webhook_hint",
    "twins_scan_batch",
    "connect_answer",
    "connection_activated",
    "connection_check",
    "connection_rename",
    "connection_unexalate_all",
    "entity_connect",
    "errors_resolve",
    "live_twins",
    "twin_unexalate",
    "unexalates_sweep",
    "CHUNK",
    "MAX_PUSHED_BYTES",
    "MESSAGES_PATH",
    "NO_ENTITY",
    "OPEN_EVENT_STATUSES",
    "POLL_HANDOUT_LEASE",
    "POLL_PATH",
    "PROTOCOL",
    "WAITING_FOR_PUSH",
    "PermanentSyncError",
    "SyncRefused",
    "TransientSyncError",
    "attachment_stream_for_remote",
    "attachments_needed",
    "backoff_seconds",
    "connection_deliver",
    "connection_detect_changes",
    "connection_error_raise",
    "connection_poll",
    "connection_retry",
    "detect_changes_all",
    "entity_exalate",
    "error_resolve",
    "error_retry",
    "exalate_request_process",
    "max_message_bytes",
    "messages_receive",
    "poll_answer",
    "poll_remotes_all",
    "pushed_attachment_path",
    "pushed_attachment_store",
    "staging_dir",
    "state_for",
    "sync_drain",
    "twin_apply",
    "twin_request_scan",
    "twin_retry",
    "twin_scan",
    "twin_status_refresh",
    "webhook_receive",
]
