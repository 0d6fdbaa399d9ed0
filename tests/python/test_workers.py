"""Several worker processes: gunicorn with --preload and two workers, real HTTP from several
loopback source addresses. A ban made in one worker is enforced by all within a second; with
Redis, rate windows are global."""

import http.client
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def request(port, path, source):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", path, headers={"Accept": "text/html"})
        r = conn.getresponse()
        r.read()
        return r.status, r.getheader("X-Worker-Pid")
    finally:
        conn.close()


@pytest.fixture
def gunicorn(tmp_path):
    def start(**env):
        log = tmp_path / "gunicorn.log"
        e = dict(os.environ, AIWAF_TEST_BASE_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="djproject.settings", **env)
        e.pop("AIWAF_TEST_DJANGO_DB", None)  # the workers use the SQLite file in tmp_path
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "djproject.wsgi:application", "--preload", "--workers", "2",
             "--bind", "127.0.0.1:0", "--error-logfile", str(log), "--graceful-timeout", "5"],
            cwd=HERE, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        deadline = time.monotonic() + 30
        port = None
        while time.monotonic() < deadline and port is None:
            m = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", log.read_text() if log.exists() else "")
            port = int(m.group(1)) if m else None
            time.sleep(0.1)
        assert port, log.read_text() if log.exists() else "gunicorn did not start"
        # both workers up and serving
        pids, n = set(), 0
        while len(pids) < 2:
            n += 1
            assert n < 400, f"one worker only: {pids}"
            status, pid = request(port, "/health/", f"127.0.{n // 250}.{n % 250 + 2}")
            assert status == 200
            pids.add(pid)
        return port

    procs = []
    yield start
    for p in procs:
        p.terminate()
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()


def test_a_ban_in_one_worker_is_enforced_by_all_within_a_second(gunicorn):
    port = gunicorn()
    attacker = "127.66.0.9"
    status, banned_by = request(port, "/.env", attacker)
    assert status == 403
    time.sleep(1.0)
    seen = {}
    for _ in range(40):
        status, pid = request(port, "/", attacker)
        seen.setdefault(pid, set()).add(status)
    assert len(seen) == 2, f"answers came from one worker only: {seen}"
    assert all(s == {403} for s in seen.values()), seen
    # others are served by both
    assert request(port, "/", "127.66.0.10")[0] == 200


def test_rate_windows_are_global_with_redis(gunicorn):
    url = os.environ.get("AIWAF_TEST_REDIS_URL")
    if not url:
        if os.environ.get("AIWAF_REQUIRE_SERVICES") == "1":
            pytest.fail("AIWAF_TEST_REDIS_URL is not set and AIWAF_REQUIRE_SERVICES=1")
        pytest.skip("AIWAF_TEST_REDIS_URL not set: no Redis to share windows through")
    port = gunicorn(AIWAF_TEST_SHARED_REDIS=url)
    client = f"127.67.{os.getpid() % 250}.{int(time.time()) % 250 + 1}"
    import threading

    answers = []
    # a request that holds a worker for 0.4 s sends the client's next ones to the other worker:
    # over a few rounds both workers count the same client
    # (an idle pair of workers tends to hand every connection to the same one: rounds alternate)
    for round_ in range(6):
        busy = threading.Thread(target=request, args=(port, "/slow/", f"127.68.0.{round_ + 1}"))
        if round_ % 2:
            busy.start()
            time.sleep(0.15)
        for _ in range(5):
            answers.append(request(port, "/", client))
        if round_ % 2:
            busy.join()
    pids = {pid for _, pid in answers}
    assert len(pids) == 2, answers
    codes = [s for s, _ in answers]
    # 20 pass, then 429, whichever worker answers: alone, neither would have reached 20
    assert codes[:20] == [200] * 20 and set(codes[20:]) == {429}, answers
