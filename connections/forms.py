"""Forms of the Initiate and Accept wizards (General settings forms live in settings_forms.py).

The wizards keep their answers in hidden fields between steps, so every step is a plain
POST that also works without JavaScript; the services check everything again at the end.
"""

from __future__ import annotations

from django import forms

from .invitations import InvitationPayload
from .models import Connection
from .selectors import node_identity_get
from .services import ConnectionSetupError, connection_name_validate

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


def accepted_name_validate(payload: InvitationPayload) -> str:
    """Check the connection name an invitation brings, as Initiate checks a typed one.

    ``payload`` is the decoded invitation. A local invitation's name was checked on this
    node when it was made (both ends share it). For any other, the name must be usable
    here (at most 100 letters, digits, spaces, dots, dashes or underscores; Initiate's
    rule) and not taken by another connection of this node. Otherwise raises
    ``ConnectionSetupError`` (field ``code``; 409 when taken) saying what to ask the
    initiating admin for. Returns the trimmed name.
    """
    if payload.node_id == node_identity_get().node_id:
        return payload.name
    name = (payload.name or "").strip()
    shown = name if len(name) <= 100 else name[:100] + "…"
    initiator = payload.node_name or payload.node_url or "the initiating node"
    if name and Connection.objects.filter(name__iexact=name).exists():
        raise ConnectionSetupError(
            f"A connection named {shown} already exists on this node, so this invitation cannot"
            f" be accepted here. Ask the admin of {initiator} to initiate the connection again"
            " with another name.",
            status=409,
            field="code",
        )
    try:
        return connection_name_validate(name)
    except ConnectionSetupError:
        raise ConnectionSetupError(
            f"This invitation names the connection {shown!r}, which is not a usable connection"
            " name (it needs 1 to 100 letters, digits, spaces, dots, dashes or underscores)."
            f" Ask the admin of {initiator} for an invitation with another name.",
            field="code",
        ) from None
