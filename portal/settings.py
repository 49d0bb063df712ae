"""Settings, read from the environment once (see README for every variable).

The embedded default needs no configuration: SQLite in WAL mode and Celery's filesystem
broker under PORTAL_VAR_DIR. Production sets DATABASE_URL, CELERY_BROKER_URL,
DJANGO_SECRET_KEY, ALLOWED_HOSTS and, for S3-compatible storage, AWS_STORAGE_BUCKET_NAME.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

VAR_DIR = Path(env.str("PORTAL_VAR_DIR", default=str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _var_secret(name: str) -> str:
    """A secret generated once and kept under the var folder (never in the repo)."""
    path = VAR_DIR / name
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        value = secrets.token_urlsafe(50)
        f.write(value)
    return value


DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or _var_secret("secret_key")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Links in e-mails point here. Mail (notifications) uses Django's settings: the console by
# default; production sets EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend, EMAIL_HOST...
PORTAL_BASE_URL = env.str("PORTAL_BASE_URL", default="http://127.0.0.1:8000")
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="portal@localhost")

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
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "portal",
    "threats",
    "scans",
    "releases",
    "livehunt",
]

MIDDLEWARE = [
    # first, so that it times the whole request and sees the final status code
    "portal.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "portal.middleware.RequestContextMiddleware",
    "portal.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
AUTH_USER_MODEL = "portal.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

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
                "portal.context_processors.roles",
                "portal.context_processors.notifications",
            ],
        },
    },
]

# --- database ---------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'portal.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets the web server read while the worker writes; IMMEDIATE takes the write
        # lock at BEGIN so two writers queue on busy_timeout instead of failing mid-way.
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
        ),
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file, not memory, so that a real worker process can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-portal.sqlite3")}
# Connections are kept a minute (requests and tasks alike) and checked before reuse.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Shared by every process: throttles, the device-token entries the update check authenticates
# from. Several machines: Redis (CACHE_URL). One machine: diskcache, a SQLite-backed cache that
# is process-safe with atomic incr and no per-write directory scan (Django's file cache lists
# its folder on every set and evicts at 300 entries; docs/decisions.md).
CACHES = {
    "default": env.cache("CACHE_URL")
    if env.str("CACHE_URL", default="")
    else {
        "BACKEND": "portal.cache.PersistentDiskCache",
        "LOCATION": str(VAR_DIR / "cache"),
        "TIMEOUT": 300,
        "SHARDS": 16,  # one SQLite file each: concurrent writers rarely wait on one another
        "DATABASE_TIMEOUT": 1.0,
        "OPTIONS": {"size_limit": 2**30},
    },
}

# --- files --------------------------------------------------------------------------------
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "/media/"
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "portal" / "static"]
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
# An S3-compatible server (MinIO, Ceph, moto in CI) instead of AWS; path-style addressing works
# with all of them. Keys come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (read by boto3).
AWS_S3_ENDPOINT_URL = env.str("AWS_S3_ENDPOINT_URL", default="") or None
AWS_S3_REGION_NAME = env.str("AWS_S3_REGION_NAME", default="us-east-1")
AWS_S3_ADDRESSING_STYLE = "path"
AWS_DEFAULT_ACL = None
AWS_QUERYSTRING_AUTH = True
STORAGES = {
    "default": (
        {"BACKEND": "storages.backends.s3.S3Storage"}
        if AWS_STORAGE_BUCKET_NAME
        else {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    ),
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# Uploads larger than this stream to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_TEMP_DIR = str(VAR_DIR / "tmp")
Path(FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)
MAX_UPLOAD_MB = env.int("MAX_UPLOAD_MB", default=200)

# --- security -----------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# Behind TLS in production set SECURE_COOKIES=true.
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Log-in throttling (portal/services.py, docs/decisions.md). LOGIN_FAILURE_LIMIT failures of
# one username from one source IP lock that pair; LOGIN_FAILURE_LIMIT_PER_USERNAME failures of
# one username from any IPs lock the username, except from IPs it logged in from within
# LOGIN_KNOWN_IP_DAYS. Failures count while each comes within LOGIN_FAILURE_WINDOW of the
# last; the first lockout lasts LOGIN_FAILURE_WINDOW and each further one twice the one
# before, up to LOGIN_LOCKOUT_MAX. At most LOGIN_AUDIT_ROWS_PER_IP audit rows per source IP
# and window record failed log-ins; the counters count the rest.
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_FAILURE_WINDOW = timedelta(minutes=env.int("LOGIN_FAILURE_WINDOW_MINUTES", default=15))
LOGIN_FAILURE_LIMIT_PER_USERNAME = env.int(
    "LOGIN_FAILURE_LIMIT_PER_USERNAME", default=4 * LOGIN_FAILURE_LIMIT
)
LOGIN_LOCKOUT_MAX = timedelta(hours=env.int("LOGIN_LOCKOUT_MAX_HOURS", default=24))
LOGIN_KNOWN_IP_DAYS = env.int("LOGIN_KNOWN_IP_DAYS", default=30)
LOGIN_AUDIT_ROWS_PER_IP = env.int("LOGIN_AUDIT_ROWS_PER_IP", default=20)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# --- REST API -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["portal.permissions.IsStaffUser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "portal.exceptions.api_exception_handler",
    # JSON bounded in size (413) and depth (400) before it is parsed (portal/parsers.py)
    "DEFAULT_PARSER_CLASSES": [
        "portal.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_THROTTLE_RATES": {"auth": "20/min"},
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Mobile threat portal API",
    "DESCRIPTION": (
        "Signatures, samples, scans, retro-hunts and releases for researchers and reviewers "
        "(session or `Authorization: Token <token>`), and the device API for phones."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["portal.permissions.IsStaffUser"],
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI's files come from the sidecar package: the docs work with no internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # <id:...> in URLs (portal/params.py): ids from 1 to 2^63-1, anything else is 404
    "PATH_CONVERTER_OVERRIDES": {
        "id": {"type": "integer", "minimum": 1, "maximum": 9223372036854775807}
    },
    # every JSON body may be refused with 400 (too deep) or 413 (too large), and 401/403/404
    # are documented where an operation's kind implies them: portal/schema.py
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "portal.schema.document_request_limits",
        "portal.schema.document_common_errors",
    ],
}

# --- Celery -------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
BROKER_DIR = VAR_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    (BROKER_DIR / "queue").mkdir(parents=True, exist_ok=True)
    (BROKER_DIR / "processed").mkdir(parents=True, exist_ok=True)
    (BROKER_DIR / "control").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        # kombu would otherwise create ./control for broadcast exchanges.
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        # How long a worker sleeps when no queue has a message. The default 1 s capped each
        # worker at about a task a second, 0.1 s at ~12 scans/s; 0.01 s costs a few folder
        # listings a second when idle (bench/bench_scan_burst.py, docs/scanning.md).
        "polling_interval": env.float("BROKER_POLL_SECONDS", default=0.01),
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True  # results live in our own tables
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # run_portal's single worker takes 4 (docs/scanning.md)
# Celery's Django fixup closes the database connection around every task unless this is set;
# reconnecting cost 20-30 ms a scan on PostgreSQL. portal.celery closes stale or broken
# connections before and after each task instead, as Django does around a request.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_SOFT_TIME_LIMIT", default=300)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TIME_LIMIT", default=360)
# Scan workers re-queue scans whose worker died this often (the filesystem broker cannot
# redeliver a message after SIGKILL; see docs/scanning.md).
SCAN_RECOVER_EVERY_SECONDS = env.float("SCAN_RECOVER_EVERY_SECONDS", default=60.0)
# Test-only: a running scan sleeps this long first, so a test can kill its worker mid-scan.
SCAN_TEST_DELAY_SECONDS = env.float("SCAN_TEST_DELAY_SECONDS", default=0.0)
# A queued scan or hunt chunk not started after this long is sent to the broker again by the
# recovery pass (the first send may have failed while the broker was down; a duplicate
# delivery is harmless: the claim is a compare-and-swap).
SCAN_REQUEUE_AFTER_SECONDS = env.int("SCAN_REQUEUE_AFTER_SECONDS", default=300)
# --- retro-hunts (docs/retrohunts.md) -------------------------------------------------------
# Samples per chunk task on queue "hunts": several workers share one hunt chunk by chunk.
RETROHUNT_CHUNK_SIZE = env.int("RETROHUNT_CHUNK_SIZE", default=500)
# Hunt workers look for chunks whose worker died (or that were never delivered) this often.
RETROHUNT_RECOVER_EVERY_SECONDS = env.float("RETROHUNT_RECOVER_EVERY_SECONDS", default=60.0)
# The clean-corpus gate passes on its own only when its hunt covered at least this many clean
# apps; below it the pages say "no clean corpus" and approval needs a written override.
GATE_MIN_CLEAN_APPS = env.int("GATE_MIN_CLEAN_APPS", default=1)
# Test-only: each sample of a hunt chunk sleeps this long, so a test can watch progress move.
RETROHUNT_TEST_DELAY_SECONDS = env.float("RETROHUNT_TEST_DELAY_SECONDS", default=0.0)
# --- livehunt (docs/livehunt.md) ---------------------------------------------------------------
# The longest a watch rule may live; webhook timeout; whether webhooks may call loopback and
# link-local addresses (refused by default: server-side request forgery).
LIVEHUNT_MAX_DAYS = env.int("LIVEHUNT_MAX_DAYS", default=365)
LIVEHUNT_WEBHOOK_TIMEOUT_SECONDS = env.float("LIVEHUNT_WEBHOOK_TIMEOUT_SECONDS", default=5.0)
LIVEHUNT_WEBHOOK_ALLOW_LOCAL = env.bool("LIVEHUNT_WEBHOOK_ALLOW_LOCAL", default=False)
CELERY_TASK_DEFAULT_QUEUE = "default"
# Which queue each task goes to, in one place. Publishing tasks need the TUF keys, so they
# run only where a worker consumes `publish`.
CELERY_TASK_ROUTES = {
    "scans.scan_sample": {"queue": "scans"},
    "scans.hunt_chunk": {"queue": "hunts"},
    # after a scan, on the scan workers (docs/livehunt.md)
    "livehunt.watch_sample": {"queue": "scans"},
    "livehunt.deliver_webhook": {"queue": "scans"},
    "releases.build_release": {"queue": "publish"},
    "releases.refresh_timestamp": {"queue": "publish"},
    "releases.resend_stuck_builds": {"queue": "publish"},
    "releases.sign_rollouts": {"queue": "publish"},
}
CELERY_TASK_DEFAULT_EXCHANGE = "default"
CELERY_TASK_DEFAULT_ROUTING_KEY = "default"
CELERY_TASK_QUEUES_NAMES = ["default", "scans", "hunts", "publish"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "prune-heartbeats": {"task": "portal.prune_heartbeats", "schedule": 3600.0},
    # timestamp.json expires after RELEASE_TIMESTAMP_EXPIRY_HOURS; re-sign it well before.
    "refresh-update-timestamp": {
        "task": "releases.refresh_timestamp",
        "schedule": 3600.0,
        "options": {"queue": "publish"},
    },
    # a build whose message was lost (broker down at publish) is sent again
    "resend-stuck-builds": {
        "task": "releases.resend_stuck_builds",
        "schedule": 300.0,
        "options": {"queue": "publish"},
    },
    # one row per release per day: the devices page draws adoption over time from these
    # the automatic-halt rules, also checked soon after each report batch with detections
    # samples' current verdicts follow the current release; sent at each publish and halt,
    # and run here too so that a lost message only delays them
    "sync-current-verdicts": {
        "task": "scans.verdicts_sync",
        "schedule": 60.0,
        "options": {"queue": "default"},
    },
    # the facts index Koodous hunts read (scans.FactsSegment), built ahead of the hunts
    "build-facts-segments": {
        "task": "scans.facts_segments_build",
        "schedule": 300.0,
        "options": {"queue": "hunts"},
    },
    "check-auto-halt": {
        "task": "releases.check_auto_halt",
        "schedule": 300.0,
        "options": {"queue": "default"},
    },
    "snapshot-release-adoption": {
        "task": "releases.snapshot_adoption",
        "schedule": 3600.0,
        "options": {"queue": "default"},
    },
    # roll complete days of detection reports up, then delete raw ones past the retention
    "rollup-detection-reports": {
        "task": "releases.rollup_detection_reports",
        "schedule": 3600.0,
        "options": {"queue": "default"},
    },
}
# --- releases, the update feed and devices (docs/releases.md) ------------------------------
# The TUF repository served under /updates/ (copy it to any static server or CDN).
RELEASE_REPO_DIR = Path(env.str("RELEASE_REPO_DIR", default=str(VAR_DIR / "updates")))
# Online TUF keys come from TUF_TARGETS_KEY / TUF_SNAPSHOT_KEY / TUF_TIMESTAMP_KEY (PEM text or
# a path) first, then <TUF_KEYS_DIR>/<role>.pem; `tuf_keys init` writes development keys here.
TUF_KEYS_DIR = Path(env.str("TUF_KEYS_DIR", default=str(VAR_DIR / "tuf-keys")))
RELEASE_DELTA_RETENTION = env.int("RELEASE_DELTA_RETENTION", default=30)
# only the newest few releases keep their deltas listed in targets.json (older full bundles
# stay listed for the retention window): each listed target costs every phone bytes per change
RELEASE_DELTA_LISTED_RELEASES = env.int("RELEASE_DELTA_LISTED_RELEASES", default=3)
RELEASE_INITIAL_ROLLOUT_PERCENT = env.int("RELEASE_INITIAL_ROLLOUT_PERCENT", default=100)
# Publishes per reviewer (every interface); more get 429 with Retry-After. While a release is
# building another publish gets 409; a build not finished this long after publish is sent again.
RELEASE_PUBLISH_RATE = env.str("RELEASE_PUBLISH_RATE", default="10/min")
RELEASE_BUILD_RESEND_AFTER_SECONDS = env.int("RELEASE_BUILD_RESEND_AFTER_SECONDS", default=600)
RELEASE_TIMESTAMP_EXPIRY_HOURS = env.int("RELEASE_TIMESTAMP_EXPIRY_HOURS", default=24)
# Detection reports from phones (docs/privacy.md): batches per device before 429, and how
# many days raw reports (which name their device) are kept before only anonymous daily
# roll-ups remain.
DEVICE_REPORT_RATE = env.str("DEVICE_REPORT_RATE", default="60/hour")
# The cloud look-up (docs/lookup.md): look-ups per device, and how long a phone may keep an
# answer for a hash (it asks again sooner when its release changes).
DEVICE_LOOKUP_RATE = env.str("DEVICE_LOOKUP_RATE", default="120/hour")
DEVICE_LOOKUP_CACHE_SECONDS = env.int("DEVICE_LOOKUP_CACHE_SECONDS", default=6 * 3600)
DEVICE_REPORT_RETENTION_DAYS = env.int("DEVICE_REPORT_RETENTION_DAYS", default=30)
# Automatic halts (releases/halts.py): within the last AUTO_HALT_WINDOW_MINUTES, a signature
# new in the current release reported on a clean app, or one app detected by more than
# AUTO_HALT_APP_SHARE of a cohort's reporting devices (once at least AUTO_HALT_MIN_DEVICES
# of them reported), halts the release and alerts every reviewer.
AUTO_HALT_WINDOW_MINUTES = env.int("AUTO_HALT_WINDOW_MINUTES", default=60)
AUTO_HALT_APP_SHARE = env.float("AUTO_HALT_APP_SHARE", default=0.05)
AUTO_HALT_MIN_DEVICES = env.int("AUTO_HALT_MIN_DEVICES", default=20)
# reports are checked this long after they arrive (one check per such delay, fleet-wide)
AUTO_HALT_DELAY_SECONDS = env.int("AUTO_HALT_DELAY_SECONDS", default=10)
DEVICE_ENROLLMENT_KEY = env.str("DEVICE_ENROLLMENT_KEY", default="") or _var_secret(
    "device_enrollment_key"
)
# What the update API tells a device to wait before asking again, and the per-device and
# per-IP limits beyond which it answers 429 with Retry-After.
DEVICE_MIN_WAIT_SECONDS = env.int("DEVICE_MIN_WAIT_SECONDS", default=3600)
DEVICE_UPDATE_RATE = env.str("DEVICE_UPDATE_RATE", default="60/hour")
DEVICE_REGISTER_RATE = env.str("DEVICE_REGISTER_RATE", default="30/min")
# How long the shared cache keeps a device's token entry (the update check's authentication
# costs no database query while it is there); revoking a device drops it at once.
DEVICE_TOKEN_CACHE_SECONDS = env.int("DEVICE_TOKEN_CACHE_SECONDS", default=7 * 24 * 3600)

# A worker writes a heartbeat row this often; /healthz calls it down after WORKER_STALE_AFTER.
WORKER_HEARTBEAT_SECONDS = env.float("WORKER_HEARTBEAT_SECONDS", default=10.0)
WORKER_STALE_AFTER = timedelta(seconds=env.int("WORKER_STALE_AFTER_SECONDS", default=45))
# run_portal restarts a child that died after this long, doubling with each quick failure.
RUN_PORTAL_FIRST_RESTART_SECONDS = env.float("RUN_PORTAL_FIRST_RESTART_SECONDS", default=1.0)

# --- metrics and logs (docs/observability.md) -----------------------------------------------
# prometheus_client's multiprocess mode: each web process writes its HTTP counters to files
# here and one scrape of /metrics sums them. prometheus_client reads the variable when it is
# imported, so it is set here, before any of our code imports it (web, workers and tests alike).
# One folder per machine on a local disk; run_portal empties it when the server starts.
PROMETHEUS_MULTIPROC_DIR = Path(
    env.str("PROMETHEUS_MULTIPROC_DIR", default=str(VAR_DIR / "prometheus"))
).resolve()
PROMETHEUS_MULTIPROC_DIR.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(PROMETHEUS_MULTIPROC_DIR)
# Who may read /metrics: these addresses or networks (REMOTE_ADDR), or a request with
# "Authorization: Bearer <METRICS_TOKEN>" (empty: no token access).
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=["127.0.0.1", "::1"])
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# "plain" lines for people, or "json": one JSON object a line, for log shippers.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": ["levelname", "name", "message"],
            "rename_fields": {"levelname": "level", "name": "logger", "exc_info": "exception"},
            "timestamp": True,
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
