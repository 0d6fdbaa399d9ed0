"""Data where a Django user looks for it: ``migrate``, the management commands, the admin,
and bans shared between worker processes."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test import Client

from aiwaf import conf
from aiwaf.models import BlacklistEntry, BlockEvent, DynamicKeyword, IPExemption, RequestLog

pytestmark = pytest.mark.django_db(transaction=True)


def run(capfd, *args):
    capfd.readouterr()
    call_command(*args)
    return capfd.readouterr().out


def test_migrate_from_empty_creates_the_store_schema():
    tables = set(connection.introspection.table_names())
    assert {"aiwaf_blacklist", "aiwaf_exemptions", "aiwaf_keywords", "aiwaf_events", "aiwaf_request_log", "aiwaf_meta"} <= tables
    # nothing unprefixed: the project's own tables named `settings` or `events` are safe
    assert not {"blacklist", "settings", "events", "meta"} & tables
    assert BlacklistEntry.objects.count() == 0
    # the Django migration state knows the models
    from django.db.migrations.recorder import MigrationRecorder

    assert MigrationRecorder.Migration.objects.filter(app="aiwaf", name="0001_initial").exists()


def test_commands_with_the_seeds_names(capfd, ip):
    me = ip()
    net = f"{me}/32"  # shown as a network (stored as the address)
    assert run(capfd, "add_ipexemption", me, "--reason", "office") == f"Exempted {net}.\n"
    assert run(capfd, "add_ipexemption", me) == f"{net} is already exempt.\n"
    assert IPExemption.objects.get(ip_address=me).reason == "office"
    out = json.loads(run(capfd, "aiwaf_list", "--ips-exempted", "--format", "json"))
    assert [e["ip"] for e in out] == [me]
    assert "Request logging: disabled" in run(capfd, "aiwaf_logging")
    assert run(capfd, "aiwaf_logging", "--enable") == "Request logging enabled.\n"
    assert "Request logging: enabled" in run(capfd, "aiwaf_logging", "--status")
    run(capfd, "aiwaf_logging", "--disable")
    # the seed's aiwaf_reset crashed; this one clears what it says
    out = run(capfd, "aiwaf_reset", "--exemptions-only", "--confirm")
    assert out == "Deleted 1 rows (all exemptions).\n", out
    assert IPExemption.objects.count() == 0


def test_detect_and_train_reads_aiwaf_access_log(capfd, settings):
    scanner = "203.0.113.77"  # training never bans loopback addresses
    lines = []
    for n, path in enumerate(["/.env", "/wp-admin/setup.php", "/phpmyadmin/", "/.git/config", "/backup.zip", "/admin.php", "/x.asp"]):
        lines.append(
            f'{scanner} - - [01/Dec/2026:10:00:{n:02d} +0000] "GET {path} HTTP/1.1" 404 153 "-" "Mozilla/5.0 zgrab/0.x"'
        )
    Path(settings.AIWAF_ACCESS_LOG).write_text("\n".join(lines) + "\n")
    report = json.loads(run(capfd, "detect_and_train", "--json"))
    assert report["lines_read"] == len(lines) and report["lines_skipped"] == 0, report
    assert report["sources"][0]["source"] == settings.AIWAF_ACCESS_LOG
    assert BlacklistEntry.objects.filter(ip_address=scanner).exists()
    out = run(capfd, "aiwaf_list", "--format", "json")
    assert scanner in {b["ip"] for b in json.loads(out)}


def _admin_client():
    User.objects.create_superuser("admin", "a@example.com", "pw")
    c = Client()
    assert c.login(username="admin", password="pw")
    return c


def test_admin_pages_render_and_edits_take_effect(engine_for, ip):
    eng = engine_for()  # the engine on the test database
    c, victim = _admin_client(), ip()
    for model in ["blacklistentry", "ipexemption", "dynamickeyword", "blockevent", "requestlog"]:
        r = c.get(f"/admin/aiwaf/{model}/", REMOTE_ADDR="127.0.0.1")
        assert r.status_code == 200, (model, r.status_code)
    assert c.get("/admin/aiwaf/blacklistentry/add/", REMOTE_ADDR="127.0.0.1").status_code == 200
    # an operator bans an address in the admin: the running engine enforces it within a second
    assert Client().get("/", REMOTE_ADDR=victim).status_code == 200
    r = c.post("/admin/aiwaf/blacklistentry/add/", {"ip_address": victim, "reason": "seen in logs", "ttl": "1h"},
               REMOTE_ADDR="127.0.0.1")
    assert r.status_code == 302, r.content[:500]
    entry = BlacklistEntry.objects.get(ip_address=victim)
    assert entry.reason == "seen in logs" and entry.expires_at is not None
    deadline = time.monotonic() + 1.5
    while Client().get("/", REMOTE_ADDR=victim).status_code != 403:
        assert time.monotonic() < deadline, "ban not enforced within a second"
        time.sleep(0.05)
    # a block leaves an event with its evidence, shown in the admin
    attacker = ip()
    assert Client().get("/", {"q": "<script>alert(1)</script>"}, REMOTE_ADDR=attacker).status_code == 403
    assert eng.flush(10)
    event = BlockEvent.objects.filter(ip=attacker).get()
    assert event.detector == "payload" and "xss" in event.evidence
    page = c.get(f"/admin/aiwaf/blockevent/{event.pk}/change/", REMOTE_ADDR="127.0.0.1")
    assert page.status_code == 200 and b"xss" in page.content
    # lifting the ban in the admin: served again within a second
    r = c.post(f"/admin/aiwaf/blacklistentry/{victim}/delete/", {"post": "yes"}, REMOTE_ADDR="127.0.0.1")
    assert r.status_code == 302
    deadline = time.monotonic() + 1.5
    while Client().get("/", REMOTE_ADDR=victim).status_code != 200:
        assert time.monotonic() < deadline, "unban not applied within a second"
        time.sleep(0.05)
    # an exemption added in the admin lifts a ban and is stored
    assert Client().get("/.env", REMOTE_ADDR=attacker).status_code == 403
    r = c.post("/admin/aiwaf/ipexemption/add/", {"ip_address": attacker, "reason": "pentest"}, REMOTE_ADDR="127.0.0.1")
    assert r.status_code == 302
    assert IPExemption.objects.filter(ip_address=attacker).exists()


def test_request_log_when_enabled(settings, engine_for, ip):
    # the switch stored by `aiwaf_logging` wins over the setting: none stored here
    with connection.cursor() as c:
        c.execute("DELETE FROM aiwaf_settings WHERE key = 'request_logging'")
    settings.AIWAF_MIDDLEWARE_LOGGING = True
    eng = engine_for()
    me = ip()
    assert Client().get("/contact/", REMOTE_ADDR=me, HTTP_USER_AGENT="UA-test").status_code == 200
    assert Client().get("/", {"id": "1' OR '1'='1"}, REMOTE_ADDR=me).status_code == 403
    assert eng.flush(10)
    rows = list(RequestLog.objects.filter(ip_address=me).order_by("ts"))
    assert [(r.path, r.status_code, r.blocked) for r in rows] == [("/contact/", 200, False), ("/", 403, True)]
    assert rows[0].user_agent == "UA-test"


def test_check_dependencies_command_with_the_seeds_flags(capfd, settings, tmp_path):
    # the project's requirements; the index is unreachable on purpose: a clear error, exit 3
    settings.BASE_DIR = tmp_path
    (tmp_path / "requirements.txt").write_text("Django>=4.2\nscikit-learn>=1.0,<2.0\n")
    from django.core.management.base import CommandError

    capfd.readouterr()
    with pytest.raises(CommandError) as e:
        call_command("check_dependencies", "--format", "json", "--index-url", "http://127.0.0.1:9")
    assert e.value.returncode == 3
    assert "cannot reach the package index at http://127.0.0.1:9" in capfd.readouterr().err


def test_logging_clear_regenerate_model_and_diagnose(capfd, settings, engine_for, ip):
    # a few logged requests, then the seed's commands over them
    assert run(capfd, "aiwaf_logging", "--enable") == "Request logging enabled.\n"
    eng = engine_for()
    me = ip()
    for path in ["/", "/contact/", "/api/items/"]:
        assert Client().get(path, REMOTE_ADDR=me).status_code == 200
    assert eng.flush(10)
    assert RequestLog.objects.filter(ip_address=me).count() == 3
    out = run(capfd, "regenerate_model", "--json")
    report = json.loads(out)
    assert report["sources"][0]["source"] == "request log"
    assert report["lines_read"] >= 3 and report["model_skipped"].startswith(f"{report['rows']} usable rows")
    n = RequestLog.objects.count()
    assert run(capfd, "aiwaf_logging", "--clear") == f"Deleted {n} request log rows.\n"
    assert RequestLog.objects.count() == 0
    run(capfd, "aiwaf_logging", "--disable")
    capfd.readouterr()
    try:
        call_command("aiwaf_diagnose")
    except Exception:  # noqa: BLE001 - a finding (no model yet) is exit code 1, shown below
        pass
    out = capfd.readouterr().out
    assert "aiwaf app in INSTALLED_APPS: yes" in out
    assert "aiwaf.middleware.AIWAFMiddleware" in out
    assert "schema version" in out and "request logging" in out, out


def test_command_output_goes_through_the_commands_stdout(ip):
    import io

    me = ip()
    buf = io.StringIO()
    call_command("add_ipexemption", me, "--reason", "captured", stdout=buf)
    assert buf.getvalue() == f"Exempted {me}/32.\n"
    buf = io.StringIO()
    call_command("aiwaf_list", "--ips-exempted", "--format", "json", stdout=buf)
    assert me in {e["ip"] for e in json.loads(buf.getvalue())}
