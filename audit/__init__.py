"""The audit log: who did which admin action on this node, and when (issue 11)."""
