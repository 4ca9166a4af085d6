"""Forms of the Initiate and Accept wizards (General settings forms live in settings_forms.py).

The wizards keep their answers in hidden fields between steps, so every step is a plain
POST that also works without JavaScript; the services check everything again at the end.
"""

from __future__ import annotations

from django import forms

from .services import accepted_name_validate  # noqa: F401  (re-exported for views and api)

MODE_CHOICES = [("basic", "Basic"), ("visual", "Visual"), ("script", "Script")]
ACCESS_CHOICES = [("yes", "Yes, I have admin access"), ("no", "No, I don't have admin access")]


class InitiateForm(forms.Form):
    """Every answer of the Initiate connection wizard; each step validates its own part."""

    destination_url = forms.CharField(
        label="Destination Instance URL", required=False, max_length=500
    )
    no_url = forms.BooleanField(label="I don't have a URL", required=False)
    mode = forms.ChoiceField(
        label="Choose the configuration type", choices=MODE_CHOICES, required=False
    )
    name = forms.CharField(label="Connection name", required=False, max_length=100)
    admin_access = forms.ChoiceField(
        label="Do you have admin access to the destination instance?",
        choices=ACCESS_CHOICES,
        required=False,
    )
    # Display-only echoes of the destination check (the service checks again on Initiate).
    type = forms.CharField(required=False, max_length=10)
    remote_name = forms.CharField(required=False, max_length=100)
    remote_tracker = forms.CharField(required=False, max_length=20)


class InvitationCodeForm(forms.Form):
    """The Accept invitation wizard: the pasted code."""

    code = forms.CharField(
        label="Invitation code",
        required=False,
        max_length=8000,
        widget=forms.Textarea(
            attrs={"rows": 5, "class": "code", "spellcheck": "false", "autocomplete": "off"}
        ),
        strip=True,
    )
