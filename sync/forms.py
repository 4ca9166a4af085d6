"""Forms of the sync pages: the incident number to exalate, on one connection or a chosen one."""

from __future__ import annotations

import re

from django import forms

from .selectors import exalatable_connections
from .services import KEY_RE


class ExalateNumberForm(forms.Form):
    """``number``: the incident number typed by the admin (e.g. INC0010001)."""

    number = forms.CharField(
        label="Incident number",
        max_length=64,
        widget=forms.TextInput(attrs={"placeholder": "INC0010001", "autocomplete": "off"}),
    )

    def clean_number(self) -> str:
        value = self.cleaned_data["number"].strip()
        if not KEY_RE.match(value):
            raise forms.ValidationError(
                "Enter an incident number such as INC0010001 (letters, digits, '-', '_' or '.')."
            )
        if re.fullmatch(r"[A-Za-z]{2,8}\d{3,}", value):  # a number typed in lower case: INC0010001
            value = value.upper()
        return value


class ExalateForm(ExalateNumberForm):
    """The Entity sync status form: an active connection and an incident number."""

    connection = forms.ModelChoiceField(queryset=None, empty_label=None, label="Connection")

    field_order = ["connection", "number"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        connections = exalatable_connections()
        self.fields["connection"].queryset = connections
        if connections.count() > 1:  # make the admin choose: no silent alphabetical default
            self.fields["connection"].empty_label = "Choose a connection"


class TwinLookupForm(forms.Form):
    """``q``: a number or sys_id to look up among the twins."""

    q = forms.CharField(label="Incident number", max_length=64, required=False)
