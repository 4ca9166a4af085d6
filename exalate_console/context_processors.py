"""Template context shared by every console page: the left menu."""

MENU = [
    ("getting-started", "Getting started"),
    ("sync:dashboard", "Dashboard"),
    ("connections:list", "Connections"),
    ("sync:entity-status", "Entity sync status"),
    ("triggers", "Triggers"),
    ("sync:errors", "Errors"),
    ("sync:queue", "Sync queue"),
    ("sync:cleanup", "Clean-up tools"),
    ("bulk", "Bulk operations"),
    ("connections:general-settings", "General settings"),
    ("audit:log", "Audit log"),
]


def console(request):
    """``menu`` (``[(url_name, label), ...]``) and ``node_name`` for base.html.

    The node's name is in the top bar and on the login page, so an admin with two nodes
    open (the "Yes, I have admin access" branch jumps from one to the other) always
    knows which one is in front of them.
    """
    from django.db import DatabaseError

    from connections.selectors import node_identity_get

    try:
        node_name = node_identity_get().name
    except DatabaseError:  # not migrated yet: the page still renders
        node_name = ""
    return {"menu": MENU, "node_name": node_name}
