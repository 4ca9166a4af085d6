"""The General settings form: this node's identity and its tracker instance.

The tracker choice comes from the registry (``TRACKER_ADAPTERS``); the labels, the example
URL and the authentication choices from the chosen adapter class
(``TrackerAdapter.settings_fields()``): ServiceNow asks for a user and password or an
OAuth client, another tracker for its own credentials (an e-mail and API token, a token).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django import forms

from trackers.errors import TrackerError
from trackers.interface import SettingsFields
from trackers.registry import adapter_class, adapter_classes

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


def _in_sentence(label: str) -> str:
    """A field label inside a sentence: ``Password`` → ``password``, ``API token`` stays."""
    return label if label[1:2].isupper() else label[:1].lower() + label[1:]


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
    tracker = forms.ChoiceField(
        label="Tracker",
        choices=(),
        widget=forms.Select(attrs={"data-change-submit": "#switch-tracker"}),
    )
    instance_url = forms.CharField(
        label="Instance URL",
        max_length=200,
    )
    auth_method = forms.ChoiceField(
        label="Authentication", choices=NodeSettings.AuthMethod.choices, widget=forms.RadioSelect
    )
    username = forms.CharField(
        label="User name",
        max_length=150,
        required=False,
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

    def __init__(
        self, *args, stored: NodeSettings, locked: dict[str, str], tracker: str = "", **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.fields["tracker"].choices = [
            (name, cls.display_name or name) for name, cls in adapter_classes().items()
        ]
        self.stored = stored
        self.locked = locked
        self.tracker = locked.get("tracker") or tracker or stored.tracker
        self._label_for_tracker()
        for field_name, value in locked.items():
            field = self.fields.get(field_name)
            if field is None:  # not asked for this tracker (e.g. OAuth fields)
                continue
            field.disabled = True
            field.required = False
            field.initial = value
            self.initial[field_name] = value  # the form's initial dict wins over field.initial
            field.help_text = "Set by the environment; change it there."
        if stored.password:
            what = "A password is" if self.spec.password_label == "Password" else "One is"
            self.fields["password"].help_text = f"{what} stored. Leave empty to keep it."
        if stored.client_secret and "client_secret" in self.fields:
            self.fields[
                "client_secret"
            ].help_text = "A client secret is stored. Leave empty to keep it."

    def _label_for_tracker(self) -> None:
        """Labels, example and auth choices of ``self.tracker``'s adapter class."""
        try:
            cls = adapter_class(self.tracker)
        except TrackerError:
            cls = None
        spec: SettingsFields = cls.settings_fields() if cls else SettingsFields()
        self.spec = spec
        self.tracker_label = (cls.display_name if cls else "") or self.tracker
        url = self.fields["instance_url"]
        url.label = spec.instance_url_label
        if "instance_url" not in self.locked:
            url.help_text = f"Your {self.tracker_label} address, e.g. {spec.instance_url_example}"
        url.widget.attrs["placeholder"] = spec.instance_url_example
        self.fields["auth_method"].choices = list(spec.auth_methods)
        values = [value for value, _ in spec.auth_methods]
        if self.initial.get("auth_method") not in values and values:
            self.initial["auth_method"] = values[0]
        for name, label, help_text in (
            ("username", spec.username_label, spec.username_help),
            ("password", spec.password_label, spec.password_help),
        ):
            # (the environment lock and a stored secret replace the help text below)
            self.fields[name].label, self.fields[name].help_text = label, help_text
        if not spec.client_auth_methods:
            for name in ("client_id", "client_secret"):
                self.fields.pop(name, None)

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
            self.spec.instance_url_label,
            self.spec.instance_url_example,
        )
        if not value:
            raise forms.ValidationError(
                f"Enter your {self.tracker_label} {_in_sentence(self.spec.instance_url_label)}."
            )
        return value

    def clean(self):
        data = super().clean()
        if self.locked.get("instance_url"):
            return data
        method = data.get("auth_method")
        password = data.get("password") or self.stored.password
        secret = data.get("client_secret") or self.stored.client_secret
        spec = self.spec
        if not data.get("username") and method in spec.username_required_for:
            self.add_error(
                "username", f"Enter the integration account's {_in_sentence(spec.username_label)}."
            )
        if not password:
            self.add_error("password", f"Enter the {_in_sentence(spec.password_label)}.")
        if method in spec.client_auth_methods:
            if not data.get("client_id"):
                self.add_error(
                    "client_id", "OAuth needs the client id of an OAuth application registry entry."
                )
            if not secret:
                self.add_error("client_secret", "OAuth needs the client secret.")
        return data
