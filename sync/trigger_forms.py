"""Forms of the Triggers and Bulk operations pages (issue 13).

The query itself is checked by the service (``services.query_check``: syntax, the table's
fields, the count), so the form only carries it; its length is checked there too, with a
message that says why a trigger's query is limited.
"""

from __future__ import annotations

from django import forms

from connections.models import Connection

from .services.bulk_csv import MAX_BYTES


def _connections():
    return Connection.objects.exclude(status=Connection.Status.PENDING).order_by("name")


class TriggerForm(forms.Form):
    """Entity type, **If** (an encoded query), connection, notes, Active; ``confirm_all``
    is ticked by the admin after being told how many entities an empty query matches."""

    entity_type = forms.ChoiceField(label="Entity type", choices=[("incident", "Incident")])
    query = forms.CharField(
        label="If",
        required=False,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "class": "code", "spellcheck": "false"}),
        help_text="A ServiceNow encoded query, e.g. active=true^priority<=2^assignment_group.name=Network",
    )
    connection = forms.ModelChoiceField(queryset=None, label="Connection", empty_label=None)
    notes = forms.CharField(label="Notes", required=False, widget=forms.Textarea(attrs={"rows": 2}))
    active = forms.BooleanField(label="Active", required=False, initial=True)
    confirm_all = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["connection"].queryset = _connections()


class BulkConnectForm(forms.Form):
    """A connection and a CSV file of local number ↔ remote key pairs."""

    connection = forms.ModelChoiceField(queryset=None, label="Connection", empty_label=None)
    file = forms.FileField(
        label="CSV file",
        allow_empty_file=True,
        help_text="One pair per line: local number, remote key (comma, semicolon or tab). "
        "An optional header line. At most 10,000 rows.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["connection"].queryset = Connection.objects.filter(
            status=Connection.Status.ACTIVE
        ).order_by("name")

    def read(self) -> bytes:
        """The uploaded bytes (at most ``MAX_BYTES + 1``: the service says when it is too big)."""
        upload = self.cleaned_data["file"]
        return upload.read(MAX_BYTES + 1)
