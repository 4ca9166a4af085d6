"""The filters of the Audit log page (and of ``GET /api/audit/``)."""

from __future__ import annotations

from django import forms


class AuditFilterForm(forms.Form):
    """``action``, ``actor``, ``q`` (target or detail contains), ``since`` / ``until`` (days)."""

    action = forms.CharField(required=False, max_length=40)
    actor = forms.CharField(required=False, max_length=150, label="User")
    q = forms.CharField(required=False, max_length=200, label="Target or detail contains")
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("The first day is after the last day: swap them.")
        return data

    def filters(self) -> dict:
        """The valid filters as keyword arguments of ``audit.selectors.audit_entries``."""
        if not self.is_valid():
            return {}
        return {k: v for k, v in self.cleaned_data.items() if v not in (None, "")}
