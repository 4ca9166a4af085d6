"""kombu's file-system transport with atomic message files (the default, no-server broker).

kombu's ``filesystem`` transport (5.x) creates ``<time>_<uuid>.<queue>.msg`` and then
writes it; a consumer listing the folder in between moves and reads an empty or partial
file, and ``json.loads`` then fails with "Expecting value": the Celery worker stops with
"Unrecoverable error". Bursts of messages (the sync engine sends one per twin) make this
likely. Here a message is written under a name the consumer ignores and then renamed in
one step (``os.replace`` is atomic within a folder), so a consumer only ever sees whole
messages. Everything else is kombu's.

Selected by ``CELERY_BROKER_TRANSPORT`` in settings when the broker URL is ``filesystem://``.
"""

from __future__ import annotations

import os
import uuid

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        """Put ``payload`` onto ``queue``: write ``.<uuid>.partial``, then rename to the message name."""
        final = os.path.join(
            self.data_folder_out,
            f"{int(round(filesystem.monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg",
        )
        partial = os.path.join(self.data_folder_out, f"partial_{uuid.uuid4().hex}.partial")
        try:
            with open(partial, "wb") as fh:
                fh.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
