"""A small Django project set up the way the seed's README says, over aiwaf-rs."""

import os
from pathlib import Path

# A fresh directory per test session (bans persist in the database); worker processes started
# by a test are given the same one.
if "AIWAF_TEST_BASE_DIR" not in os.environ:
    import tempfile

    os.environ["AIWAF_TEST_BASE_DIR"] = tempfile.mkdtemp(prefix="aiwaf-django-")
BASE_DIR = Path(os.environ["AIWAF_TEST_BASE_DIR"])
BASE_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "djproject.urls"
USE_TZ = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "aiwaf",
    "shop",
]

MIDDLEWARE = [
    "shop.middleware.worker_pid",
    "aiwaf.middleware.AIWAFMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

_db = os.environ.get("AIWAF_TEST_DJANGO_DB")
if _db:
    # PostgreSQL (the CI service): postgres://USER@HOST:PORT/NAME
    from urllib.parse import urlparse

    u = urlparse(_db)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": u.path.lstrip("/"),
            "USER": u.username or "",
            "PASSWORD": u.password or "",
            "HOST": u.hostname or "127.0.0.1",
            "PORT": u.port or 5432,
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": BASE_DIR / "db.sqlite3",
            # aiwaf's store writes to this database from its own connection: Django's write
            # transactions take the write lock when they begin, and wait for it
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
            # a file, not memory: the Rust store opens the same database
            "TEST": {"NAME": str(BASE_DIR / "test-db.sqlite3")},
        }
    }

# The seed's settings, with its names.
AIWAF_ACCESS_LOG = str(BASE_DIR / "access.log")
AIWAF_EXEMPT_PATHS = ["/health/"]
AIWAF_RATE_MAX = 20
AIWAF_RATE_FLOOD = 40
# several workers share rate windows through Redis when set (the gunicorn test sets it)
AIWAF_REDIS_URL = os.environ.get("AIWAF_TEST_SHARED_REDIS") or None
