"""The Django package's cost per request without a server or a load generator in the way:
Django's ``WSGIHandler`` called in-process on the bench site (``bench/seed/site``), alone and
with the seed's six middleware classes over this repository's engine, interleaved.

    target/py-venv/bin/python bench/django_inprocess.py [--requests 20000] [--rounds 3]

Needs the package installed in that interpreter (``tests/python/run.sh`` makes the venv;
``maturin develop --release`` in it for figures worth quoting). Prints microseconds per request
(median of the rounds) and the ratio, which is what a CPU-bound sync worker's throughput
follows.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SITE = Path(__file__).resolve().parent / "seed" / "site"
PATHS = ["/", "/blog/2024/05/hello-world/", "/static/css/app.css", "/api/items?page=2", "/en/profile/"]


def child(n: int) -> None:
    """One measurement in this process (settings from the environment)."""
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler

    handler = WSGIHandler()
    rnd = random.Random(42)

    def environ() -> dict:
        path, _, query = rnd.choice(PATHS).partition("?")
        k = rnd.randint(1, 100000)
        return {
            "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": query,
            "RAW_URI": path + ("?" + query if query else ""), "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "5555",
            "HTTP_HOST": "127.0.0.1:8000", "HTTP_ACCEPT": "text/html",
            "HTTP_X_FORWARDED_FOR": f"10.{k // 65536 % 256}.{k // 256 % 256}.{k % 256}",
            "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr, "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http", "wsgi.multithread": False, "wsgi.multiprocess": True,
            "wsgi.run_once": False, "SERVER_SOFTWARE": "gunicorn/23.0.0",
        }

    def start_response(status, headers, exc_info=None):
        if not status.startswith("200"):
            raise SystemExit(f"unexpected answer {status}")

    envs = [environ() for _ in range(n + 500)]
    for e in envs[:500]:  # warm-up: URL resolver, engine start, caches
        b"".join(handler(e, start_response))
    t = time.perf_counter()
    for e in envs[500:]:
        r = handler(e, start_response)
        b"".join(r)
        r.close()
    print(f"{1e6 * (time.perf_counter() - t) / n:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        shutil.copytree(SITE, site)
        env = dict(
            os.environ,
            DJANGO_SETTINGS_MODULE="site_proj.settings",
            PYTHONPATH=str(site),
            SITE_DB=str(Path(tmp) / "db.sqlite3"),
            AIWAF_DATA_DIR=str(Path(tmp) / "data"),
            # the allow path is measured: nobody is rate limited
            AIWAF_RATE_MAX="1000000",
            AIWAF_RATE_FLOOD="2000000",
            AIWAF_TRUSTED_PROXIES="127.0.0.1/32",
        )
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=site, check=True,
                       env=dict(env, WITH_AIWAF="1"))
        runs: dict[str, list[float]] = {"0": [], "1": []}
        for _ in range(a.rounds):
            for with_aiwaf in ("0", "1"):
                out = subprocess.run([sys.executable, __file__, "--child", str(a.requests)], cwd=site, check=True,
                                     env=dict(env, WITH_AIWAF=with_aiwaf), capture_output=True, text=True).stdout
                runs[with_aiwaf].append(float(out.strip().splitlines()[-1]))
        alone, with_pkg = statistics.median(runs["0"]), statistics.median(runs["1"])
        print(f"Django alone:              {alone:6.1f} us/request  (runs: {', '.join(f'{x:.1f}' for x in runs['0'])})")
        print(f"Django + aiwaf-rs (6 mw):  {with_pkg:6.1f} us/request  (runs: {', '.join(f'{x:.1f}' for x in runs['1'])})")
        print(f"added {with_pkg - alone:.1f} us; ratio {alone / with_pkg:.3f} (throughput of a CPU-bound worker)")


if __name__ == "__main__":
    main()
