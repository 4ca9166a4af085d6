"""The Jira tracker plug: Jira Cloud (REST v3, ADF) and Jira Data Center (REST v2, wiki markup).

``jira_adapter.adapter.JiraAdapter`` implements ``trackers.interface.TrackerAdapter``;
it is registered as ``"jira"`` in ``settings.TRACKER_ADAPTERS``.
"""
