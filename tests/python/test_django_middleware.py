"""The Django middleware, driven through Django's test client (the full middleware stack)."""

import json
import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from aiwaf import conf
from shop import views


def get(client, path, ip, **extra):
    return client.get(path, REMOTE_ADDR=ip, **extra)


def test_benign_traffic_passes_with_a_request_id(ip):
    c, me = Client(), ip()
    for path in ["/", "/contact/", "/api/items/", "/items/6f1c2a52-0f5e-4b8e-9a0e-3a3f2f7d9a10/", "/?q=blue+shoes"]:
        r = get(c, path, me, HTTP_USER_AGENT="Mozilla/5.0", HTTP_ACCEPT="text/html")
        assert r.status_code == 200, (path, r.status_code, r.content)
        assert len(r["X-Aiwaf-Request-Id"]) == 20


def test_a_request_id_the_view_set_is_kept(ip):
    r = get(Client(), "/traced/", ip())
    assert r.status_code == 200 and r["X-Aiwaf-Request-Id"] == "set-by-the-view"
    assert r["Content-Type"] == "text/plain"


def test_sql_injection_in_the_query_is_blocked_with_the_seed_body(ip):
    r = get(Client(), "/", ip(), QUERY_STRING="id=1' OR '1'='1")
    assert r.status_code == 403
    assert json.loads(r.content) == {"error": "blocked"}
    assert r["X-Aiwaf-Request-Id"]


def test_payload_in_a_json_body_never_reaches_the_view(ip):
    before = views.CALLS["api"]
    r = Client().post(
        "/api/items/", data=json.dumps({"name": "x; cat /etc/passwd"}), content_type="application/json", REMOTE_ADDR=ip()
    )
    assert r.status_code == 403, r.content
    assert views.CALLS["api"] == before
    ok = Client().post("/api/items/", data=json.dumps({"name": "blue shoes"}), content_type="application/json", REMOTE_ADDR=ip())
    assert ok.status_code == 200 and json.loads(ok.content)["got"] == {"name": "blue shoes"}
    assert views.CALLS["api"] == before + 1


def test_large_multipart_upload_is_inspected_and_still_reaches_the_view_whole(ip):
    from django.core.files.uploadedfile import SimpleUploadedFile

    blob = SimpleUploadedFile("photo.jpg", b"\xff\xd8" + b"x" * 3_000_000, content_type="image/jpeg")
    r = Client().post("/upload/", {"file": blob, "note": "holiday"}, REMOTE_ADDR=ip())
    assert r.status_code == 200, r.content
    assert json.loads(r.content) == {"name": "photo.jpg", "size": 3_000_002, "note": "holiday"}
    bad = SimpleUploadedFile("a.jpg", b"x" * 10, content_type="image/jpeg")
    r = Client().post("/upload/", {"file": bad, "note": "<script>alert(1)</script>"}, REMOTE_ADDR=ip())
    assert r.status_code == 403


def test_a_probe_bans_and_the_ban_holds(ip):
    c, me = Client(), ip()
    assert get(c, "/.env", me).status_code == 403
    r = get(c, "/", me)
    assert r.status_code == 403 and json.loads(r.content) == {"error": "blocked"}
    assert get(c, "/", ip()).status_code == 200


def test_rate_limit_then_flood_ban_as_the_seed(ip):
    c, me = Client(), ip()
    codes = [get(c, "/", me).status_code for _ in range(41)]
    assert codes[:20] == [200] * 20
    assert set(codes[20:40]) == {429}
    assert codes[40] == 403
    r = get(c, "/", me)
    assert r.status_code == 403


def test_rate_limit_answer_is_the_seed_json_with_retry_after(ip):
    c, me = Client(), ip()
    for _ in range(20):
        get(c, "/", me)
    r = get(c, "/", me)
    assert r.status_code == 429
    assert json.loads(r.content) == {"error": "too_many_requests"}
    assert int(r["Retry-After"]) >= 1


@pytest.mark.parametrize("path", ["/open/", "/open-cbv/", "/open-seed-cbv/"])
def test_the_decorator_exempts_from_every_check(path, ip):
    c, me = Client(), ip()
    codes = {get(c, path, me, QUERY_STRING="id=1' OR '1'='1").status_code for _ in range(50)}
    assert codes == {200}
    # the same client elsewhere is still inspected
    assert get(c, "/", me, QUERY_STRING="id=1' OR '1'='1").status_code == 403


def test_exempt_paths_setting(ip):
    c, me = Client(), ip()
    assert {get(c, "/health/", me).status_code for _ in range(45)} == {200}


def test_spoofed_forwarded_for_is_not_believed(ip):
    c, me, victim = Client(), ip(), ip()
    assert get(c, "/.env", me, HTTP_X_FORWARDED_FOR=victim).status_code == 403
    assert get(c, "/", victim).status_code == 200, "the address in the header was banned"
    assert get(c, "/", me).status_code == 403, "the real peer was not banned"


def test_settings_are_honoured(settings, engine_for, ip):
    settings.AIWAF_RATE_MAX = 3
    settings.AIWAF_RATE_FLOOD = 100
    engine_for()
    c, me = Client(), ip()
    assert [get(c, "/", me).status_code for _ in range(4)] == [200, 200, 200, 429]


def test_a_bad_setting_is_named(settings, engine_for):
    settings.AIWAF_RATE_MAX = "lots"
    with pytest.raises(ImproperlyConfigured, match="AIWAF_RATE_MAX"):
        engine_for()
    settings.AIWAF_RATE_MAX = 20
    settings.AIWAF_EXEMPT_IPS = ["10.0.0.0/33"]
    with pytest.raises(ImproperlyConfigured, match="AIWAF_EXEMPT_IPS"):
        engine_for()
    settings.AIWAF_EXEMPT_IPS = []
    settings.AIWAF_BLOCK_RESPONSE = "teapot"
    with pytest.raises(ImproperlyConfigured, match="AIWAF_BLOCK_RESPONSE"):
        engine_for()


def test_permission_denied_style(settings, engine_for, ip):
    settings.AIWAF_BLOCK_RESPONSE = "permission_denied"
    engine_for()
    r = get(Client(), "/", ip(), QUERY_STRING="q=<script>alert(1)</script>")
    assert r.status_code == 403
    assert b"error" not in r.content  # Django's own 403 page, not JSON


SEED_MIDDLEWARE = [
    "aiwaf.middleware.IPAndKeywordBlockMiddleware",
    "aiwaf.middleware.RateLimitMiddleware",
    "aiwaf.middleware.AIAnomalyMiddleware",
    "aiwaf.middleware.HoneypotTimingMiddleware",
    "aiwaf.middleware.UUIDTamperMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "aiwaf.middleware_logger.AIWAFLoggerMiddleware",
]


def test_each_seed_class_turns_on_its_detectors(settings, engine_for, ip):
    settings.MIDDLEWARE = ["aiwaf.middleware.RateLimitMiddleware"] + SEED_MIDDLEWARE[5:9]
    assert set(conf.detectors_off()) >= {"keyword", "payload", "honeypot", "uuid_tamper", "anomaly"}
    engine_for()
    c, me = Client(), ip()
    # no keyword or payload detector listed: the probe reaches the app (404), the rate limit works
    assert get(c, "/.env", me).status_code == 404
    assert get(c, "/", me, QUERY_STRING="id=1' OR '1'='1").status_code == 200
    codes = [get(c, "/", me).status_code for _ in range(25)]
    assert 429 in codes
    settings.MIDDLEWARE = ["aiwaf.middleware.IPAndKeywordBlockMiddleware"] + SEED_MIDDLEWARE[5:9]
    engine_for()
    c, me = Client(), ip()
    assert get(c, "/wp-login.php", me).status_code == 403
    assert {get(c, "/", ip()).status_code for _ in range(30)} == {200}


def test_the_seed_list_runs_one_engine_pass_per_request(settings, engine_for, ip):
    settings.MIDDLEWARE = SEED_MIDDLEWARE
    eng = engine_for()
    c = Client()
    before = eng.core.stats().get("requests", 0)
    for _ in range(5):
        assert get(c, "/", ip()).status_code == 200
    assert eng.core.stats()["requests"] - before == 5


def test_honeypot_needs_the_form_page_first(settings, engine_for, ip):
    settings.MIDDLEWARE = SEED_MIDDLEWARE
    engine_for()
    c, human = Client(), ip()
    assert c.get("/contact/", REMOTE_ADDR=human, HTTP_ACCEPT="text/html").status_code == 200
    time.sleep(1.2)
    assert c.post("/contact/", {"message": "hi"}, REMOTE_ADDR=human).status_code == 200
    bot = ip()
    codes = [c.post("/contact/", {"message": "buy"}, REMOTE_ADDR=bot).status_code for _ in range(6)]
    assert 403 in codes, codes


def test_uuid_tampering_is_banned(settings, engine_for, ip):
    settings.MIDDLEWARE = SEED_MIDDLEWARE
    engine_for()
    import uuid

    c, me = Client(), ip()
    codes = [get(c, f"/items/{uuid.uuid4()}/", me).status_code for _ in range(8)]
    assert codes[0] == 404 and codes[-1] == 403, codes


def test_later_versions_settings_dict_is_mapped(settings):
    del settings.AIWAF_RATE_MAX
    settings.AIWAF_SETTINGS = {
        "RATE_LIMITING": {"REQUESTS_PER_MINUTE": 30, "BURST_THRESHOLD": 90},
        "EXEMPTIONS": {"PATHS": ["/hooks/"], "IPS": ["10.0.0.0/8"]},
        "TRAINING_MODE": False,
        "SENSITIVITY_LEVEL": "high",
        "CUSTOM_PATTERNS": ["evilword"],
        "LOGGING": {"ENABLED": True},
    }
    text = conf.core_settings()
    assert (text["AIWAF_RATE_WINDOW"], text["AIWAF_RATE_MAX"]) == ("60", "30")
    assert text["AIWAF_RATE_FLOOD"] == "40", "a flat setting wins over the dict"
    assert json.loads(text["AIWAF_EXEMPT_PATHS"]) == ["/health/"]  # flat again
    assert json.loads(text["AIWAF_EXEMPT_IPS"]) == ["10.0.0.0/8"]
    assert text["AIWAF_DYNAMIC_TOP_N"] == "20" and text["AIWAF_MIDDLEWARE_LOGGING"] == "true"
    keywords = json.loads(text["AIWAF_MALICIOUS_KEYWORDS"])
    assert ".env" in keywords and keywords[-1] == "evilword"
    assert "anomaly" in json.loads(text["AIWAF_DETECTORS_OFF"])
    conf.check()
    settings.AIWAF_SETTINGS = {"SENSITIVITY_LEVEL": "extreme"}
    with pytest.raises(ImproperlyConfigured, match="SENSITIVITY_LEVEL"):
        conf.core_settings()
