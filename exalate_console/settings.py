"""Settings of the Exalate console: one module, every value read from the environment.

Each variable is documented in README.md ("Configuration"). Defaults need no server:
SQLite under ``var/`` and a Celery broker on the file system, so ``make run`` works on
a fresh machine. Bad values stop start-up with a message naming the variable.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from .env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_str,
    env_url,
    persistent_secret,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("EXALATE_VAR_DIR", str(BASE_DIR / "var"))).resolve()

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = persistent_secret("SECRET_KEY", VAR_DIR / "secret_key")
# Fernet keys (comma-separated, newest first) that encrypt stored credentials.
FIELD_ENCRYPTION_KEYS = [
    k.strip()
    for k in persistent_secret(
        "FIELD_ENCRYPTION_KEY",
        VAR_DIR / "field_encryption_key",
        factory=lambda: Fernet.generate_key().decode(),
    ).split(",")
    if k.strip()
]
for _key in FIELD_ENCRYPTION_KEYS:
    try:
        Fernet(_key)
    except ValueError:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEY is not a valid Fernet key (32 url-safe base64-encoded bytes); "
            'generate one with: python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
        ) from None

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# This node's public base URL (its "Exalate URL"); empty means private (no reachable URL).
NODE_PUBLIC_URL = env_url("NODE_PUBLIC_URL", "")
NODE_NAME = env_str("NODE_NAME", "")
if NODE_PUBLIC_URL:
    _host = urlsplit(NODE_PUBLIC_URL).hostname or ""
    if _host and _host not in ALLOWED_HOSTS and "*" not in ALLOWED_HOSTS:
        ALLOWED_HOSTS.append(_host)

# Tracker plugs: tracker name -> its adapter class (trackers/registry.py). A node serves one
# of them (General settings' "tracker"); the engine never imports an adapter directly.
TRACKER_ADAPTERS = {
    "servicenow": "servicenow_adapter.adapter.ServiceNowAdapter",
    "jira": "jira_adapter.adapter.JiraAdapter",
}

# The tracker this node serves, for scripted installs (the settings page shows them read-only).
SERVICENOW_INSTANCE_URL = env_url("SERVICENOW_INSTANCE_URL", "")
SERVICENOW_AUTH = env_choice("SERVICENOW_AUTH", "basic", ("basic", "oauth"))
SERVICENOW_USERNAME = env_str("SERVICENOW_USERNAME", "")
SERVICENOW_PASSWORD = env_str("SERVICENOW_PASSWORD", "")
SERVICENOW_CLIENT_ID = env_str("SERVICENOW_CLIENT_ID", "")
SERVICENOW_CLIENT_SECRET = env_str("SERVICENOW_CLIENT_SECRET", "")
SERVICENOW_TIMEOUT = env_float("SERVICENOW_TIMEOUT", 30.0, minimum=0.1)
# Retries of transient ServiceNow errors (timeouts, 429, 5xx) within one call: tries, and seconds in all.
SERVICENOW_RETRY_ATTEMPTS = env_int("SERVICENOW_RETRY_ATTEMPTS", 4, minimum=1, maximum=20)
SERVICENOW_RETRY_MAX_SECONDS = env_float("SERVICENOW_RETRY_MAX_SECONDS", 60.0, minimum=0)

# A Jira node, for scripted installs: Cloud (e-mail + API token, REST v3) or Data Center
# (personal access token in JIRA_API_TOKEN, REST v2); JIRA_AUTH "" detects it from the site.
JIRA_INSTANCE_URL = env_url("JIRA_INSTANCE_URL", "")
JIRA_AUTH = env_choice("JIRA_AUTH", "", ("", "cloud", "dc"))
JIRA_EMAIL = env_str("JIRA_EMAIL", "")
JIRA_API_TOKEN = env_str("JIRA_API_TOKEN", "")
JIRA_WEBHOOK_SECRET = env_str("JIRA_WEBHOOK_SECRET", "")
JIRA_TIMEOUT = env_float("JIRA_TIMEOUT", 30.0, minimum=0.1)
JIRA_RETRY_ATTEMPTS = env_int("JIRA_RETRY_ATTEMPTS", 4, minimum=1, maximum=20)
JIRA_RETRY_MAX_SECONDS = env_float("JIRA_RETRY_MAX_SECONDS", 60.0, minimum=0)
# Jira's JQL dates are minute-granular: the change poll re-reads at least this many seconds.
JIRA_POLL_MIN_OVERLAP = env_float("JIRA_POLL_MIN_OVERLAP", 120.0, minimum=60)
JIRA_CORRELATION_LOOKBACK_DAYS = env_int("JIRA_CORRELATION_LOOKBACK_DAYS", 2, minimum=1)
JIRA_CORRELATION_SETTLE_SECONDS = env_float("JIRA_CORRELATION_SETTLE_SECONDS", 5.0, minimum=0)

# Sync timing, in seconds.
SYNC_POLL_INTERVAL = env_float("SYNC_POLL_INTERVAL", 20.0, minimum=0.5)
CHANGE_POLL_INTERVAL = env_float("CHANGE_POLL_INTERVAL", 20.0, minimum=0.5)
CHANGE_POLL_OVERLAP = env_float("CHANGE_POLL_OVERLAP", 120.0, minimum=0)
# A connection error that clears by itself (credentials refused, instance hibernating,
# journal not readable) is probed again after this many seconds, doubling up to an hour.
CONNECTION_PROBE_SECONDS = env_float("CONNECTION_PROBE_SECONDS", 60.0, minimum=0.5)
NODE_REQUEST_TIMEOUT = env_float("NODE_REQUEST_TIMEOUT", 15.0, minimum=0.1)
# The guard on node URLs (connections/url_guard.py): host names or CIDR ranges to let through
# although the rules refuse them (link-local, metadata), and more to refuse. Comma-separated.
NODE_URL_ALLOW = env_list("NODE_URL_ALLOW", [])
NODE_URL_DENY = env_list("NODE_URL_DENY", [])
# Sync engine (issue #5): how often the drain task looks for work whose Celery message was
# lost, and how old such work must be first; the lease a worker holds on a twin or
# connection; the retry backoff (doubling from the base, capped); events per delivery.
SYNC_DRAIN_INTERVAL = env_float("SYNC_DRAIN_INTERVAL", 5.0, minimum=0.5)
SYNC_DRAIN_GRACE = env_float("SYNC_DRAIN_GRACE", 10.0, minimum=0)
SYNC_CLAIM_TTL = env_float("SYNC_CLAIM_TTL", 120.0, minimum=5)
SYNC_RETRY_BASE = env_float("SYNC_RETRY_BASE", 2.0, minimum=0.1)
SYNC_RETRY_MAX = env_float("SYNC_RETRY_MAX", 60.0, minimum=1)
# Errors mailed to the admins (issue 12): Django's mail backends, the console one by default
# (smtp: EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend plus EMAIL_HOST...);
# at most one mail per connection per ERROR_MAIL_PERIOD seconds. Recipients: ERROR_MAIL_TO,
# else every active staff user with an e-mail address.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "exalate-console@localhost")
ERROR_MAIL_TO = env_list("ERROR_MAIL_TO", [])
ERROR_MAIL_PERIOD = env_float("ERROR_MAIL_PERIOD", 900.0, minimum=1)
SYNC_BATCH_SIZE = env_int("SYNC_BATCH_SIZE", 50, minimum=1, maximum=1000)
INVITATION_TTL_DAYS = env_int("INVITATION_TTL_DAYS", 7, minimum=1, maximum=365)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "knox",
    "axes",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "exalate_console",
    "trackers",
    "connections",
    "sync",
    "servicenow_adapter",
    "jira_adapter",
    "audit",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "exalate_console.middleware.ConsoleAccessMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "exalate_console.urls"
WSGI_APPLICATION = "exalate_console.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "exalate_console.context_processors.console",
            ],
        },
    },
]


def _database(url: str) -> dict:
    """Parse DATABASE_URL, refusing anything that is not SQLite or PostgreSQL."""
    try:
        config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    except Exception as exc:  # dj-database-url raises ValueError and friends
        raise ImproperlyConfigured(f"DATABASE_URL={url!r} cannot be parsed: {exc}") from None
    engine = config.get("ENGINE", "")
    if engine not in ("django.db.backends.sqlite3", "django.db.backends.postgresql"):
        raise ImproperlyConfigured(
            f"DATABASE_URL={url!r}: only sqlite:///path and postgres://user@host:port/name are supported."
        )
    if engine.endswith("postgresql") and not config.get("NAME"):
        raise ImproperlyConfigured(f"DATABASE_URL={url!r} names no database.")
    if engine.endswith("sqlite3"):
        if not config.get("NAME") or config["NAME"] == ":memory:":
            raise ImproperlyConfigured(f"DATABASE_URL={url!r} names no SQLite file.")
        # Web, worker and beat share the file: wait for locks instead of failing at once.
        # Connections are kept (CONN_MAX_AGE 60 s, as for PostgreSQL): opening one, with
        # its PRAGMA, was 9 % of a node's web CPU under sync load (issue 14's profile).
        config["OPTIONS"] = {
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL;",
            "transaction_mode": "IMMEDIATE",
        }
    return config


DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
if "://" not in DATABASE_URL:
    raise ImproperlyConfigured(
        f"DATABASE_URL={DATABASE_URL!r} is not a URL: expected sqlite:///path or postgres://user@host:port/name."
    )
DATABASES = {"default": _database(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-axes first: it refuses a login that is locked out before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "landing"  # the Dashboard once a connection exists (sync.views_ops)
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise serves from finders; keeps it quiet
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE


def _proxy_ssl_header(name: str) -> tuple[str, str] | None:
    """``X-Forwarded-Proto`` (or ``X-Forwarded-Proto: https``) -> Django's (META key, value)."""
    raw = env_str(name, "").strip()
    if not raw:
        return None
    header, _, value = raw.partition(":")
    header, value = header.strip(), value.strip() or "https"
    if not header.replace("-", "").replace("_", "").isalnum():
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a header name: expected e.g. X-Forwarded-Proto (optionally ': https')."
        )
    return "HTTP_" + header.upper().replace("-", "_"), value


# HTTPS behind a TLS-terminating proxy (README "Production"): redirect plain HTTP (not /healthz,
# which load balancers call directly), trust the proxy's header saying the request was HTTPS,
# and tell browsers to use HTTPS only (HSTS, seconds).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_PROXY_SSL_HEADER = _proxy_ssl_header("SECURE_PROXY_SSL_HEADER")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)

# Content-Security-Policy (django-csp): scripts and styles only from this node's static files,
# no inline script, style attribute or event handler; no framing; images also as data: URLs.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
    }
}

# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT wrong passwords for one user name
# from one address, that pair is refused for LOGIN_LOCKOUT_MINUTES, even with the right password.
# `manage.py axes_reset` lifts every lockout at once.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1, maximum=1000)
AXES_COOLOFF_TIME = timedelta(minutes=env_float("LOGIN_LOCKOUT_MINUTES", 15.0, minimum=0.01))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "exalate_console.views.login_locked_out"
AXES_VERBOSE = False
# Two nodes on one host differ only by port; give each its own cookie names.
SESSION_COOKIE_NAME = env_str("SESSION_COOKIE_NAME", "exalate_sessionid")
CSRF_COOKIE_NAME = env_str("CSRF_COOKIE_NAME", "exalate_csrftoken")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "exalate_console.api_errors.error_exception_handler",
}
# API tokens (django-rest-knox): only a hash is stored; `manage.py create_api_token USER`
# prints a new one once. It expires after API_TOKEN_TTL_DAYS days (0: never).
_token_days = env_int("API_TOKEN_TTL_DAYS", 90, minimum=0, maximum=3650)
REST_KNOX = {
    "TOKEN_TTL": timedelta(days=_token_days) if _token_days else None,
    "AUTH_HEADER_PREFIX": "Token",
    "AUTO_REFRESH": False,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Exalate console API",
    "DESCRIPTION": "Automation API of one console node and the signed node-to-node API.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its browsable page are for this node's admins (session or token).
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAdminUser"],
    # Swagger UI served from our own static files (no CDN: admins run this in closed networks).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Issue 12: every operation gets a summary (the first sentence of its docstring).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "sync.api.schema.summaries_everywhere",
    ],
}

# Caches. "shared" is seen by every process of this node (web and Celery workers). A directory
# under VAR_DIR by default; CACHE_URL=redis://host:port/db when workers run on several hosts.
# (A tracker instance's "busy until" after a 429 lives with its throttle, below.) Its keys
# carry a prefix from this node's database, so two nodes may share one Redis db. The sync
# engine keeps its "a nudge is queued" marks there (sync.nudge).
CACHE_URL = env_str("CACHE_URL", "")
_NODE_KEY_PREFIX = hashlib.sha256(DATABASE_URL.encode()).hexdigest()[:12]
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "shared": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": _NODE_KEY_PREFIX,
        }
        if CACHE_URL.startswith(("redis://", "rediss://"))
        else {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
            "KEY_PREFIX": _NODE_KEY_PREFIX,
        }
    ),
}

# Celery. The default broker is kombu's file-system transport: nothing to install.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.split("://", 1)[0] not in ("filesystem", "redis", "rediss", "amqp", "memory"):
    raise ImproperlyConfigured(
        f"CELERY_BROKER_URL={CELERY_BROKER_URL!r}: use filesystem://, redis://host:port/db or amqp://."
    )
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        "polling_interval": 0.2,
    }
    # kombu's own transport can hand a worker a half-written message file, which stops
    # the worker; this subclass writes each file atomically (see exalate_console/filesystem_broker.py).
    CELERY_BROKER_TRANSPORT = "exalate_console.filesystem_broker:Transport"
# Tracker throttle (trackers/throttle.py), per instance URL and shared by every process of
# this node: at most TRACKER_MAX_CONCURRENCY requests in flight, TRACKER_RATE_PER_SECOND a
# second in bursts of TRACKER_RATE_BURST; a 429 halves the rate (it grows back by 1 a second
# every 10 s) and its Retry-After holds every request. 0 turns a limit off. The state lives
# in Redis when the broker or the cache is Redis, else in files under VAR_DIR/throttle.
TRACKER_MAX_CONCURRENCY = env_int("TRACKER_MAX_CONCURRENCY", 4, minimum=0, maximum=1000)
TRACKER_RATE_PER_SECOND = env_float("TRACKER_RATE_PER_SECOND", 100.0, minimum=0)
TRACKER_RATE_BURST = env_int("TRACKER_RATE_BURST", 100, minimum=1, maximum=100_000)
TRACKER_THROTTLE_URL = env_str(
    "TRACKER_THROTTLE_URL",
    next(
        (u for u in (CELERY_BROKER_URL, CACHE_URL) if u.startswith(("redis://", "rediss://"))),
        f"file://{VAR_DIR / 'throttle'}",
    ),
)
if not TRACKER_THROTTLE_URL.startswith(("redis://", "rediss://", "file:///", "memory://")):
    raise ImproperlyConfigured(
        f"TRACKER_THROTTLE_URL={TRACKER_THROTTLE_URL!r}: use redis://host:port/db, "
        "file:///an/absolute/directory or memory:// (one process only)."
    )
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = False
# Pool processes per worker. The work waits on ServiceNow and the peer far more than it
# computes, so 4 on two cores: the 1,000-incident trigger benchmark ran at 304 incidents a
# minute with 4 and 204 with 2 (issue 14). The throttle still keeps 4 requests in flight.
CELERY_WORKER_CONCURRENCY = env_int("CELERY_WORKER_CONCURRENCY", 4, minimum=1, maximum=64)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 300, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 360, minimum=2)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes the database connection around every task unless this is
# set; a worker then reconnects for each task (a new PostgreSQL backend each time). Kept for
# about 250 tasks instead; exalate_console.worker_db drops a broken or obsolete one first.
CELERY_DB_REUSE_MAX = 250
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Heartbeats (exalate_console/heartbeats.py): beat and every worker write one each
# HEARTBEAT_INTERVAL seconds; /healthz says 503 when one is older than HEARTBEAT_STALE.
HEARTBEAT_INTERVAL = env_float("HEARTBEAT_INTERVAL", 10.0, minimum=0.2)
HEARTBEAT_STALE = env_float("HEARTBEAT_STALE", 60.0, minimum=0.5)
if HEARTBEAT_STALE <= HEARTBEAT_INTERVAL:
    raise ImproperlyConfigured(
        f"HEARTBEAT_STALE={HEARTBEAT_STALE:g} must be longer than HEARTBEAT_INTERVAL={HEARTBEAT_INTERVAL:g}."
    )
# `manage.py serve` starts a crashed web, worker or beat again after SERVE_RESTART_DELAY s,
# doubling for each crash in a row up to SERVE_RESTART_MAX_DELAY s.
SERVE_RESTART_DELAY = env_float("SERVE_RESTART_DELAY", 1.0, minimum=0.1)
SERVE_RESTART_MAX_DELAY = env_float("SERVE_RESTART_MAX_DELAY", 60.0, minimum=0.1)
CELERY_BEAT_SCHEDULER = "exalate_console.heartbeats:HeartbeatScheduler"
CELERY_BEAT_MAX_LOOP_INTERVAL = HEARTBEAT_INTERVAL

LOG_LEVEL = env_choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL.upper()},
    "loggers": {"urllib3": {"level": "WARNING"}},
}
