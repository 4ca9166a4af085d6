"""The General settings form: this node's identity and its ServiceNow instance."""

from __future__ import annotations

from urllib.parse import urlsplit

from django import forms

from trackers.registry import adapter_classes

from .models import NodeSettings


def _clean_base_url(value: str, label: str, example: str) -> str:
    value = (value or "").strip()
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise forms.ValidationError(
            f"{label} must start with https:// (or http://) followed by a host name, "
            f"for example {example}."
        )
    if parts.query or parts.fragment:
        raise forms.ValidationError(f"{label} must not contain ? or #: give the base address only.")
    return value.rstrip("/")


class GeneralSettingsForm(forms.Form):
    """Fields of the General settings page.

    Password and client secret are write-only: left blank, the stored value is kept;
    they are never rendered back into the page. ``locked`` names fields set by the
    environment (shown read-only and ignored on submit).
    """

    name = forms.CharField(
        label="Node name",
        max_length=100,
        required=False,
        help_text="How other nodes see this node, e.g. “ServiceNow EU”.",
    )
    public_url = forms.CharField(
        label="Exalate URL",
        max_length=200,
        required=False,
        help_text="This node's address as other nodes reach it. Leave empty if this node has no reachable URL (it will poll).",
    )
    tracker = forms.ChoiceField(label="Tracker", choices=())
    instance_url = forms.CharField(
        label="Instance URL",
        max_length=200,
        help_text="Your ServiceNow instance, e.g. https://yourcompany.service-now.com",
    )
    auth_method = forms.ChoiceField(
        label="Authentication", choices=NodeSettings.AuthMethod.choices, widget=forms.RadioSelect
    )
    username = forms.CharField(
        label="User name",
        max_length=150,
        required=False,
        help_text="The integration user: it needs read and write on incident, sys_journal_field and sys_attachment.",
    )
    password = forms.CharField(
        label="Password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    client_id = forms.CharField(label="OAuth client id", max_length=255, required=False)
    client_secret = forms.CharField(
        label="OAuth client secret",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args, stored: NodeSettings, locked: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tracker"].choices = [
            (name, cls.display_name or name) for name, cls in adapter_classes().items()
        ]
        self.stored = stored
        self.locked = locked
        for field_name, value in locked.items():
            field = self.fields[field_name]
            field.disabled = True
            field.required = False
            field.initial = value
            self.initial[field_name] = value  # the form's initial dict wins over field.initial
            field.help_text = "Set by the environment; change it there."
        if stored.password:
            self.fields["password"].help_text = "A password is stored. Leave empty to keep it."
        if stored.client_secret:
            self.fields[
                "client_secret"
            ].help_text = "A client secret is stored. Leave empty to keep it."

    def clean_public_url(self):
        return _clean_base_url(
            self.cleaned_data.get("public_url", ""),
            "Exalate URL",
            "https://exalate.yourcompany.com",
        )

    def clean_instance_url(self):
        if "instance_url" in self.locked:
            return self.locked["instance_url"]
        value = _clean_base_url(
            self.cleaned_data.get("instance_url", ""),
            "Instance URL",
            "https://yourcompany.service-now.com",
        )
        if not value:
            raise forms.ValidationError("Enter your ServiceNow instance URL.")
        return value

    def clean(self):
        data = super().clean()
        if self.locked.get("instance_url"):
            return data
        method = data.get("auth_method")
        password = data.get("password") or self.stored.password
        secret = data.get("client_secret") or self.stored.client_secret
        if not data.get("username"):
            self.add_error("username", "Enter the integration user's name.")
        if not password:
            self.add_error("password", "Enter the integration user's password.")
        if method == NodeSettings.AuthMethod.OAUTH:
            if not data.get("client_id"):
                self.add_error(
                    "client_id", "OAuth needs the client id of an OAuth application registry entry."
                )
            if not secret:
                self.add_error("client_secret", "OAuth needs the client secret.")
        return data
