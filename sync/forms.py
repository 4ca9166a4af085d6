"""Forms of the sync pages: the entity key to exalate, on one connection or a chosen one.

What a key looks like is the tracker's business: the label, the example, the check and
the normalisation come from this node's adapter class (``TrackerAdapter.key_label``,
``key_example``, ``key_problem``, ``normalize_key``; ServiceNow: an incident number such
as INC0010001, typed in any case).
"""

from __future__ import annotations

from django import forms

from connections.selectors import tracker_adapter_class_get

from .selectors import exalatable_connections


class ExalateNumberForm(forms.Form):
    """``number``: the entity key typed by the admin (ServiceNow: an incident number, e.g. INC0010001)."""

    number = forms.CharField(
        label="Incident number",
        max_length=64,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )

    def __init__(self, *args, tracker=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.tracker = tracker or tracker_adapter_class_get()
        field = self.fields["number"]
        field.label = self.tracker.key_label[:1].upper() + self.tracker.key_label[1:]
        if self.tracker.key_example:
            field.widget.attrs["placeholder"] = self.tracker.key_example

    def clean_number(self) -> str:
        value = self.cleaned_data["number"].strip()
        problem = self.tracker.key_problem(value)
        if problem:
            raise forms.ValidationError(problem)
        return self.tracker.normalize_key(value)


class ExalateForm(ExalateNumberForm):
    """The Entity sync status form: an active connection and an entity key."""

    connection = forms.ModelChoiceField(queryset=None, empty_label=None, label="Connection")

    field_order = ["connection", "number"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        connections = exalatable_connections()
        self.fields["connection"].queryset = connections
        if connections.count() > 1:  # make the admin choose: no silent alphabetical default
            self.fields["connection"].empty_label = "Choose a connection"


class TwinLookupForm(forms.Form):
    """``q``: a key or entity id (ServiceNow: number or sys_id) to look up among the twins."""

    q = forms.CharField(label="Incident number", max_length=64, required=False)

    def __init__(self, *args, tracker=None, **kwargs):
        super().__init__(*args, **kwargs)
        key_label = (tracker or tracker_adapter_class_get()).key_label
        self.fields["q"].label = key_label[:1].upper() + key_label[1:]


class ConnectForm(forms.Form):
    """Connect: an active connection, this node's incident number and the remote one's."""

    connection = forms.ModelChoiceField(queryset=None, empty_label=None, label="Connection")
    local_key = forms.CharField(label="Incident number here", max_length=64)
    remote_key = forms.CharField(label="Remote incident number", max_length=64)

    def __init__(self, *args, tracker=None, **kwargs):
        super().__init__(*args, **kwargs)
        connections = exalatable_connections()
        self.fields["connection"].queryset = connections
        if connections.count() > 1:
            self.fields["connection"].empty_label = "Choose a connection"
        example = (tracker or tracker_adapter_class_get()).key_example
        for name in ("local_key", "remote_key"):
            self.fields[name].widget.attrs.update({"autocomplete": "off", "placeholder": example})


class UnexalateForm(forms.Form):
    """Unexalate a twin: after its queue drains (default) or at once."""

    at_once = forms.BooleanField(
        required=False, label="At once (drop what is still queued for this twin)"
    )


class RenameForm(forms.Form):
    """A connection's name and description."""

    name = forms.CharField(label="Name", max_length=100)
    description = forms.CharField(
        label="Description",
        max_length=2000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class CleanupForm(ExalateNumberForm):
    """Clean-up tools: unexalate one incident (by number) on a connection, at once."""

    connection = forms.ModelChoiceField(
        queryset=None, empty_label="Choose a connection", label="Connection"
    )
    field_order = ["connection", "number"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from connections.models import Connection

        self.fields["connection"].queryset = Connection.objects.exclude(
            status=Connection.Status.PENDING
        ).order_by("name")
