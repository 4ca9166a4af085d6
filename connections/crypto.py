"""Encryption at rest for stored credentials and connection secrets.

``EncryptedTextField`` stores a Fernet token (AES-128-CBC + HMAC-SHA256, from the
``cryptography`` library) made with the first key of ``settings.FIELD_ENCRYPTION_KEYS``;
any listed key decrypts, so keys can be rotated by prepending a new one.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(k) for k in keys])


def encrypt(plaintext: str) -> str:
    """Return the Fernet token (ASCII str) for ``plaintext``; '' stays ''."""
    if not plaintext:
        return ""
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS)).encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """Return the plaintext of a Fernet token; '' stays ''.

    Raises ImproperlyConfigured when no configured key opens it (the key was changed).
    """
    if not token:
        return ""
    try:
        return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS)).decrypt(token.encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with FIELD_ENCRYPTION_KEY: was the key changed?"
        ) from None


class EncryptedTextField(models.TextField):
    """A text column whose value is encrypted at rest; Python code sees plaintext."""

    def from_db_value(self, value, expression, connection):
        if value is None:
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None:
            return value
        return encrypt(value)
