"""Everything that writes connections or calls another node to set one up.

The flow (after https://docs.exalate.com/docs/set-up-a-connection-in-basic-mode-7062),
one module per stage:

1. ``destination`` -- :func:`destination_check`, the Initiate wizard's first step: is the
   Destination Instance URL a node of this console (``GET <url>/api/node/v1/info``,
   :func:`node_info_fetch`), this node itself (a local connection), or absent ("I don't
   have a URL": a private connection)?
2. ``initiate`` -- :func:`connection_initiate`: a Pending connection, its Invitation and
   the code (the code's format is ``connections/invitations.py``).
3. ``accept`` -- :func:`invitation_check`, the Accept wizard's Next: read the code, refuse
   it early when it is expired, made for another node, or already used here; then
   :func:`invitation_accept`. A local invitation is accepted without HTTP.
4. ``handshake`` -- the accepting node proves it holds the one-time secret
   (``POST <initiator>/api/node/v1/handshake``, a JWT signed with it,
   :func:`~connections.services.handshake.handshake_send`); the initiator turns Active
   (:func:`handshake_receive`), then the acceptor stores its own end, Active.
5. ``projects`` -- the project a connection creates its mirrors in, for a tracker with
   projects (:func:`incoming_projects_list`, :func:`incoming_project_check`,
   :func:`connection_project_set`).
6. ``lifecycle`` -- :func:`invitation_revoke`, :func:`connection_activate`,
   :func:`connection_deactivate`, :func:`connection_delete`.

Every service raises :class:`ConnectionSetupError` with a message for the admin and an
HTTP status for the API; nothing half-made stays behind on either node. Views, the API
and tests import the public names from here. To stand in for a remote node's
information, patch ``connections.services.destination.node_info_fetch`` (the name the
destination check calls); patching the re-export below changes nothing.
"""

from .accept import accepted_name_validate, invitation_accept, invitation_check
from .destination import (
    GENERAL_SETTINGS_HINT,
    INFO_PATH,
    INFO_TIMEOUT,
    DestinationCheck,
    RemoteNode,
    default_connection_name,
    destination_check,
    node_info_fetch,
    short_name,
)
from .errors import ConnectionSetupError
from .handshake import HANDSHAKE_PATH, handshake_receive
from .initiate import NAME_RE, connection_initiate, connection_name_validate
from .lifecycle import (
    connection_activate,
    connection_deactivate,
    connection_delete,
    invitation_revoke,
)
from .projects import (
    IncomingProject,
    connection_project_set,
    incoming_project_check,
    incoming_projects_list,
    tracker_has_projects,
)

__all__ = [
    "accepted_name_validate",
    "GENERAL_SETTINGS_HINT",
    "HANDSHAKE_PATH",
    "INFO_PATH",
    "INFO_TIMEOUT",
    "NAME_RE",
    "ConnectionSetupError",
    "IncomingProject",
    "connection_project_set",
    "incoming_project_check",
    "incoming_projects_list",
    "tracker_has_projects",
    "DestinationCheck",
    "RemoteNode",
    "connection_activate",
    "connection_deactivate",
    "connection_delete",
    "connection_initiate",
    "connection_name_validate",
    "default_connection_name",
    "destination_check",
    "handshake_receive",
    "invitation_accept",
    "invitation_check",
    "invitation_revoke",
    "node_info_fetch",
    "short_name",
]
