"""The WSGI and ASGI middleware, through the example Flask and FastAPI apps."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "python"))


@pytest.fixture
def settings(tmp_path):
    return {"AIWAF_DATA_DIR": str(tmp_path), "AIWAF_RATE_MAX": 5, "AIWAF_RATE_FLOOD": 100}


def test_flask_behind_the_wsgi_middleware(settings, ip):
    flask_app = pytest.importorskip("flask_app")
    app = flask_app.create_app(settings)
    c = app.test_client()

    def env(addr):
        return {"REMOTE_ADDR": addr}

    me = ip()
    r = c.get("/", environ_base=env(me))
    assert r.status_code == 200 and r.headers["X-Aiwaf-Request-Id"]
    r = c.post("/api/notes", json={"text": "hello"}, environ_base=env(me))
    assert r.status_code == 200 and r.get_json() == {"saved": {"text": "hello"}}
    # payload in the body: blocked, and the app never read it
    r = c.post("/api/notes", json={"text": "' UNION SELECT password FROM users--"}, environ_base=env(ip()))
    assert r.status_code == 403 and r.get_json()["blocked"] is True
    # in the query
    assert c.get("/?next=javascript:alert(document.cookie)", environ_base=env(ip())).status_code == 403
    # rate limit from the settings given
    other = ip()
    assert [c.get("/", environ_base=env(other)).status_code for _ in range(6)] == [200] * 5 + [429]
    # a probe bans
    bad = ip()
    assert c.get("/.env", environ_base=env(bad)).status_code == 403
    assert c.get("/", environ_base=env(bad)).status_code == 403


def test_flask_json_block_style(settings, ip):
    flask_app = pytest.importorskip("flask_app")
    from aiwaf.wsgi import AiwafMiddleware

    app = flask_app.create_app(settings)
    app.wsgi_app = AiwafMiddleware(app.wsgi_app.app, settings=settings, block_response="json")
    r = app.test_client().get("/?q=<script>alert(1)</script>", environ_base={"REMOTE_ADDR": ip()})
    assert r.status_code == 403 and json.loads(r.data) == {"error": "blocked"}
    with pytest.raises(ValueError, match="AIWAF_RATE_MAX"):
        AiwafMiddleware(app, settings={"AIWAF_RATE_MAX": "lots"})


def test_fastapi_behind_the_asgi_middleware(settings, ip):
    fastapi_app = pytest.importorskip("fastapi_app")
    from starlette.testclient import TestClient

    app = fastapi_app.create_app(settings)
    me = ip()
    with TestClient(app, client=(me, 50000)) as c:
        r = c.get("/")
        assert r.status_code == 200 and r.headers["x-aiwaf-request-id"]
        r = c.post("/api/notes", json={"text": "hello"})
        assert r.status_code == 200 and r.json() == {"saved": {"text": "hello"}}
        with c.websocket_connect("/ws") as ws:
            ws.send_text("ping")
            assert ws.receive_text() == "ping"
    with TestClient(app, client=(ip(), 50000)) as c:
        r = c.post("/api/notes", json={"cmd": "; cat /etc/passwd"})
        assert r.status_code == 403 and r.json()["blocked"] is True
    bad = ip()
    with TestClient(app, client=(bad, 50000)) as c:
        assert c.get("/wp-login.php").status_code == 403
        assert c.get("/").status_code == 403
        from starlette.websockets import WebSocketDisconnect

        with pytest.raises(WebSocketDisconnect) as e:
            with c.websocket_connect("/ws") as ws:
                ws.receive_text()
        assert e.value.code == 1008
    other = ip()
    with TestClient(app, client=(other, 50000)) as c:
        assert [c.get("/").status_code for _ in range(6)] == [200] * 5 + [429]
