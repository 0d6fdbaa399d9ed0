"""A minimal Django site for benchmarks: plain, or with aiwaf 0.1.9.1.6 as its README says.

WITH_AIWAF=1 adds the app and its five middlewares (plus the logger), in the README's order.
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
WITH_AIWAF = os.environ.get("WITH_AIWAF") == "1"

INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
MIDDLEWARE = []
if WITH_AIWAF:
    INSTALLED_APPS.append("aiwaf")
    MIDDLEWARE = [
        "aiwaf.middleware.IPAndKeywordBlockMiddleware",
        "aiwaf.middleware.RateLimitMiddleware",
        "aiwaf.middleware.AIAnomalyMiddleware",
        "aiwaf.middleware.HoneypotTimingMiddleware",
        "aiwaf.middleware.UUIDTamperMiddleware",
        "aiwaf.middleware_logger.AIWAFLoggerMiddleware",
    ]
ROOT_URLCONF = "site_proj.urls"
WSGI_APPLICATION = "site_proj.wsgi.application"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ.get("SITE_DB", str(BASE_DIR / "db.sqlite3"))}}
USE_TZ = True
AIWAF_ACCESS_LOG = os.environ.get("AIWAF_ACCESS_LOG")
AIWAF_RATE_MAX = int(os.environ.get("AIWAF_RATE_MAX", "20"))
AIWAF_RATE_FLOOD = int(os.environ.get("AIWAF_RATE_FLOOD", "40"))
AIWAF_MIDDLEWARE_LOGGING = False
LOGGING = {"version": 1, "disable_existing_loggers": True}
# Read by this repository's package only (the seed ignores them): clients arrive from the
# trusted loopback load generator with X-Forwarded-For; its data dir.
if os.environ.get("AIWAF_TRUSTED_PROXIES"):
    AIWAF_TRUSTED_PROXIES = os.environ["AIWAF_TRUSTED_PROXIES"].split(",")
if os.environ.get("AIWAF_DATA_DIR"):
    AIWAF_DATA_DIR = os.environ["AIWAF_DATA_DIR"]
