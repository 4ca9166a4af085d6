"""The Attachment API calls of :class:`servicenow_adapter.client.ServiceNowClient` (a mixin).

List, metadata, streamed download and streamed raw upload (``/api/now/attachment``);
it uses the client's ``request``, ``_result`` and ``table_list``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator

import requests

from trackers.errors import TransientTrackerError

from . import errors
from . import query as q


class AttachmentCalls:
    """``attachment_list``, ``attachment_get``, ``attachment_download``, ``attachment_upload``."""

    def attachment_list(self, table_name: str, table_sys_id: str) -> list[dict]:
        """``GET /api/now/attachment?sysparm_query=table_name=…^table_sys_id=…``: metadata rows, oldest first.

        Each row has ``sys_id``, ``file_name``, ``content_type``, ``size_bytes``, ``hash``
        (SHA-256 hex), ``sys_created_on``… as strings.
        """
        _check_sys_id(table_sys_id)
        return self.table_list(
            "sys_attachment",
            query=q.join(
                q.term("table_name", "=", table_name), q.term("table_sys_id", "=", table_sys_id)
            ),
            order=("sys_created_on", "sys_id"),
            path="/api/now/attachment",
        )

    def attachment_get(self, sys_id: str) -> dict:
        """``GET /api/now/attachment/{sys_id}``: one metadata record. Raises TrackerNotFound."""
        _check_sys_id(sys_id)
        result, _ = self._result("GET", f"/api/now/attachment/{sys_id}")
        return result

    def attachment_download(self, sys_id: str, *, chunk_size: int = 65536) -> Iterator[bytes]:
        """``GET /api/now/attachment/{sys_id}/file``: yield the bytes in chunks (streamed).

        The request is made (and retried) before the first chunk is yielded; a failure
        while streaming raises TransientTrackerError. Raises TrackerNotFound when missing.
        """
        _check_sys_id(sys_id)
        response, _ = self.request(
            "GET", f"/api/now/attachment/{sys_id}/file", headers={"Accept": "*/*"}, stream=True
        )
        return self._iter_body(response, chunk_size, sys_id)

    def _iter_body(
        self, response: requests.Response, chunk_size: int, sys_id: str
    ) -> Iterator[bytes]:
        try:
            yield from response.iter_content(chunk_size=chunk_size)
        except requests.RequestException as exc:
            raise TransientTrackerError(
                f"Download of attachment {sys_id} broke off: {errors.failure_reason(exc)}"
            ) from None
        finally:
            response.close()

    def attachment_upload(
        self,
        *,
        table_name: str,
        table_sys_id: str,
        file_name: str,
        content_type: str,
        chunks: Iterable[bytes],
    ) -> dict:
        """``POST /api/now/attachment/file?table_name=&table_sys_id=&file_name=`` with the raw bytes.

        The body is streamed from ``chunks`` (chunked transfer encoding), sent with the
        file's own ``Content-Type`` (which ServiceNow stores). The bytes' SHA-256 is
        computed on the way and compared with the ``hash`` the instance reports; a
        mismatch raises TransientTrackerError. Returns the new metadata record (201).
        Never retried here: the stream cannot be replayed.
        """
        _check_sys_id(table_sys_id)
        digest = hashlib.sha256()

        def body() -> Iterator[bytes]:
            for chunk in chunks:
                if chunk:
                    digest.update(chunk)
                    yield chunk

        result, _ = self._result(
            "POST",
            "/api/now/attachment/file",
            params={"table_name": table_name, "table_sys_id": table_sys_id, "file_name": file_name},
            data=body(),
            headers={"Content-Type": content_type or "application/octet-stream"},
            replayable=False,
        )
        reported = str(result.get("hash") or "").lower()
        if reported and re.fullmatch(r"[0-9a-f]{64}", reported) and reported != digest.hexdigest():
            raise TransientTrackerError(
                f"Upload of {file_name!r} arrived damaged: the instance's SHA-256 differs from the bytes sent."
            )
        return result


def _check_sys_id(sys_id: str) -> None:
    from .client import _check_sys_id as check

    check(sys_id)
