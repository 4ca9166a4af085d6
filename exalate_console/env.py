"""Typed readers for environment variables that refuse bad values with a clear message.

Every setting of the console comes from the environment through these helpers
(house style, after healthchecks' settings module). A bad value raises
``ImproperlyConfigured`` naming the variable, so start-up stops with a message an
operator can act on instead of a traceback deep inside Django.

Secrets may be given as ``NAME_FILE`` (a path whose content is the value), as
Docker and Kubernetes secrets are usually mounted.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    """Return ``$name`` (or the content of the file named by ``$name_FILE``), else ``default``.

    Raises ImproperlyConfigured when ``$name_FILE`` names a file that cannot be read.
    """
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            return Path(file_path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ImproperlyConfigured(
                f"{name}_FILE points to {file_path!r}, which cannot be read: {exc.strerror}."
            ) from None
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    """Return ``$name`` as a boolean: 1/true/yes/on or 0/false/no/off (any case).

    Raises ImproperlyConfigured for any other value, naming the variable.
    """
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean: use one of true/false, yes/no, on/off, 1/0."
    )


def env_int(
    name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """Return ``$name`` as an integer within [minimum, maximum].

    Raises ImproperlyConfigured when the value is not a whole number or out of range.
    """
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}.")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name}={value} is above the maximum of {maximum}.")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    """Return ``$name`` as a float (seconds, usually); refuses non-numbers and values below minimum."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    """Return ``$name`` split on commas, blanks dropped."""
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_url(name: str, default: str = "", *, schemes: tuple[str, ...] = ("http", "https")) -> str:
    """Return ``$name`` as an absolute URL with one of ``schemes``, trailing slash removed.

    An empty value returns ``default``. Raises ImproperlyConfigured for anything else.
    """
    raw = env_str(name, "").strip()
    if not raw:
        return default
    parts = urlsplit(raw)
    if parts.scheme not in schemes or not parts.netloc:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a valid URL: expected {' or '.join(schemes)}://host[:port][/path]."
        )
    return raw.rstrip("/")


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """Return ``$name`` if it is one of ``choices`` (case-insensitive), else refuse it."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={raw!r} must be one of: {', '.join(choices)}.")
    return value


def persistent_secret(name: str, path: Path, factory=lambda: secrets.token_urlsafe(50)) -> str:
    """Return ``$name`` (or ``$name_FILE``); when unset, a value generated once and kept at ``path``.

    The file is created with mode 0600 on first run, so a fresh machine needs no
    configuration and restarts keep the same key. Never a constant in the code.
    """
    value = env_str(name, "").strip()
    if value:
        return value
    try:
        if path.exists():
            return path.read_text(encoding="utf-8").strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        value = factory()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(value)
        return value
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ImproperlyConfigured(
            f"{name} is not set and {path} cannot be created to keep a generated one: {exc.strerror}."
        ) from None
