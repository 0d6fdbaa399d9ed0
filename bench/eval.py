#!/usr/bin/env python3
"""Detection evaluation of `aiwaf serve` (Python standard library only).

1. Live replay: a labelled scenario (JSON lines as written by ../shared/eval/make_scenario.py:
   t, src_ip, method, path_and_query, headers, body, label, status) is replayed in real time
   against `aiwaf serve`, each client as its own address (X-Forwarded-For from the trusted
   loopback load generator), with an upstream that answers each request with the scenario's
   status. Per label: clients, clients blocked, requests before the first block (median, p90);
   every benign client blocked is listed with the detector and evidence.
2. Offline: the scenario rendered as an nginx log is given to `aiwaf train --dry-run`; bans are
   scored against the labels.
3. Payloads: each request of a request corpus (CRS regression tests, CSIC 2010) is sent as a
   fresh client; per family detected / missed, and false positives on the benign requests.

usage: bench/eval.py --scenario FILE [--log FILE --labels FILE] [--corpus DIR] [--payload-limit N]
                     [--aiwaf target/release/aiwaf] [--out bench/results/eval.json]
"""

import argparse
import atexit
import collections
import concurrent.futures as cf
import http.client
import http.server
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time


class Upstream(http.server.BaseHTTPRequestHandler):
    """Answers with the status the scenario says (X-Eval-Status), for every method."""

    protocol_version = "HTTP/1.1"

    def _answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        status = int(self.headers.get("X-Eval-Status") or 200)
        body = b"" if self.command == "HEAD" or status in (204, 304) else b"<html><body>ok</body></html>\n"
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = do_PROPFIND = _answer

    def log_message(self, *args):
        pass


STARTED = []  # processes to stop however the run ends


@atexit.register
def _stop_all():
    for p in STARTED:
        try:
            if isinstance(p, int):
                os.kill(p, 15)
            elif p.poll() is None:
                p.terminate()
        except OSError:
            pass


def start_upstream():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def start_aiwaf(binary, upstream_port, data_dir):
    cfg = os.path.join(data_dir, "aiwaf.toml")
    with open(cfg, "w") as f:
        f.write('[server]\ntrusted_proxies = ["127.0.0.1/32"]\n')
    env = dict(os.environ, AIWAF_LOG="warn")
    p = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--upstream", f"http://127.0.0.1:{upstream_port}",
         "--data-dir", data_dir, "--config", cfg],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    STARTED.append(p)
    line = p.stdout.readline()
    addr = [w for w in line.split() if w.startswith("http://")][0][len("http://"):]
    threading.Thread(target=lambda: p.stdout.read(), daemon=True).start()
    host, port = addr.rsplit(":", 1)
    return p, host, int(port), cfg


# requests the proxy's HTTP parser refused (see `send`)
REFUSED = [0]


def send(host, port, method, target, headers, body, client_ip, status):
    h = {k: v for k, v in (headers or {}).items() if k.lower() not in ("content-length", "connection", "x-forwarded-for", "transfer-encoding")}
    h["X-Forwarded-For"] = client_ip
    h["X-Eval-Status"] = str(status or 200)
    data = body.encode("latin-1", "replace") if isinstance(body, str) else (body or b"")
    try:
        c = http.client.HTTPConnection(host, port, timeout=10)
        c.putrequest(method, target if target.startswith("/") else "/" + target, skip_host=True, skip_accept_encoding=True)
        if not any(k.lower() == "host" for k in h):
            c.putheader("Host", "localhost")
        for k, v in h.items():
            c.putheader(k, v)
        c.putheader("Content-Length", str(len(data)))
        c.endheaders(data)
        r = c.getresponse()
        text = r.read()
        ours = r.getheader("x-aiwaf-request-id") is not None
        # a HEAD answer has no body: the status and our request id say it
        blocked = r.status in (403, 429) and ours and (method == "HEAD" or b'"blocked"' in text or b"firewall" in text)
        # a request line or header the HTTP parser refuses (400 before the WAF, no request id)
        # never reaches the application either: counted as stopped, and reported apart
        refused = r.status == 400 and not ours
        c.close()
        REFUSED[0] += int(refused)
        return r.status, blocked or refused
    except Exception as e:  # a request the client library cannot even send counts as not blocked
        return f"error: {e.__class__.__name__}", False


def events(binary, data_dir, cfg):
    out = subprocess.run([binary, "events", "--json", "--limit", "1000000", "--data-dir", data_dir, "--config", cfg],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def pct(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def live(binary, scenario, speed):
    rows = [json.loads(l) for l in open(scenario)]
    rows.sort(key=lambda r: r["t"])
    up = start_upstream()
    data = tempfile.mkdtemp(prefix="aiwaf-eval-")
    proc, host, port, cfg = start_aiwaf(binary, up.server_address[1], data)
    results = [None] * len(rows)
    start = time.monotonic()
    with cf.ThreadPoolExecutor(max_workers=64) as pool:
        futs = {}
        for i, r in enumerate(rows):
            delay = start + r["t"] / speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futs[pool.submit(send, host, port, r["method"], r["path_and_query"], r.get("headers"), r.get("body", ""),
                             r["src_ip"], r.get("status"))] = i
        for f in cf.as_completed(futs):
            results[futs[f]] = f.result()
    time.sleep(1.0)
    evs = events(binary, data, cfg)
    proc.terminate()
    proc.wait(timeout=15)
    up.shutdown()
    first_event = {}
    for e in sorted(evs, key=lambda e: e["ts"]):
        first_event.setdefault(e["ip"], e)
    by_label = collections.defaultdict(lambda: {"clients": set(), "blocked": set(), "before": [], "requests": 0, "blocked_requests": 0, "rate_limited_requests": 0})
    seq = collections.defaultdict(int)
    first_block = {}
    for r, (status, blocked) in zip(rows, results):
        ip, lab = r["src_ip"], r["label"]
        b = by_label[lab]
        b["clients"].add(ip)
        b["requests"] += 1
        n = seq[ip]
        seq[ip] += 1
        if blocked and status == 403:
            b["blocked_requests"] += 1
            if ip not in first_block:
                first_block[ip] = n
                b["blocked"].add(ip)
                b["before"].append(n)
        elif blocked and status == 429:
            b["rate_limited_requests"] += 1
    report = {}
    for lab, b in sorted(by_label.items()):
        report[lab] = {
            "clients": len(b["clients"]),
            "clients_blocked": len(b["blocked"]),
            "requests": b["requests"],
            "requests_blocked_403": b["blocked_requests"],
            "requests_rate_limited_429": b["rate_limited_requests"],
            "requests_before_first_block_median": statistics.median(b["before"]) if b["before"] else None,
            "requests_before_first_block_p90": pct(b["before"], 0.9),
        }
    benign_blocked = []
    for ip in sorted(by_label["benign"]["blocked"]) if "benign" in by_label else []:
        e = first_event.get(ip, {})
        benign_blocked.append({"ip": ip, "detector": e.get("detector"), "reason": e.get("reason"), "path": e.get("path"), "evidence": e.get("evidence")})
    return {"requests": len(rows), "labels": report, "benign_clients_blocked": benign_blocked}


def ip_labels(log, labels):
    """Client address -> label, from a rendered log and its labels TSV (line numbers match)."""
    lab_by_line = {}
    with open(labels) as f:
        next(f)
        for line in f:
            parts = line.rstrip("\n").split("\t")
            lab_by_line[int(parts[0])] = parts[1]
    ip_label = {}
    with open(log, encoding="latin-1") as f:
        for n, line in enumerate(f, 1):
            ip_label.setdefault(line.split(" ", 1)[0], lab_by_line.get(n, "benign"))
    return ip_label


def offline(binary, log, labels):
    ip_label = ip_labels(log, labels)
    data = tempfile.mkdtemp(prefix="aiwaf-eval-train-")
    t = time.monotonic()
    out = subprocess.run([binary, "train", "--log", log, "--dry-run", "--json", "--data-dir", data], capture_output=True, text=True, check=True)
    wall = time.monotonic() - t
    r = json.loads(out.stdout)
    clients = collections.Counter(ip_label.values())
    banned = collections.Counter()
    benign = []
    for b in r["bans"]:
        lab = ip_label.get(b["ip"], "unknown")
        banned[lab] += 1
        if lab == "benign":
            benign.append({"ip": b["ip"], "detector": b["detector"], "reason": b["reason"]})
    return {"wall_s": round(wall, 3), "lines": r["lines_read"], "skipped": r["lines_skipped"],
            "by_label": {lab: {"clients": clients[lab], "banned": banned[lab]} for lab in sorted(clients)},
            "benign_banned": benign, "keywords": r["keywords"], "model": r.get("model")}


def payloads(binary, corpus, limit, modsec=None, no_profile=False):
    up = start_upstream()
    data = tempfile.mkdtemp(prefix="aiwaf-eval-payloads-")
    proc, host, port, cfg = start_aiwaf(binary, up.server_address[1], data)
    nginx_pid = None
    if modsec == "start":
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        msport = s.getsockname()[1]
        s.close()
        msdir = tempfile.mkdtemp(prefix="aiwaf-eval-modsec-")
        here = os.path.dirname(os.path.abspath(__file__))
        subprocess.run([os.path.join(here, "modsec", "start.sh"), msdir, str(msport), f"127.0.0.1:{up.server_address[1]}"],
                       check=True, stdout=subprocess.DEVNULL)
        nginx_pid = int(open(os.path.join(msdir, "nginx.pid")).read())
        STARTED.append(nginx_pid)
        modsec = f"127.0.0.1:{msport}"
    out = {}
    n = 0
    for name in ("crs_tests.jsonl", "csic2010.jsonl"):
        path = os.path.join(corpus, name)
        if not os.path.exists(path):
            continue
        rows = [json.loads(l) for l in open(path)]
        rows = [r for r in rows if r.get("side", "request") == "request"]
        if limit:
            step = max(1, len(rows) // limit)
            rows = rows[::step][:limit]
        if name.startswith("crs"):
            # Attack tests of rules at paranoia level 1-2 (the levels compared); must-not-fire
            # tests of every level.
            rows = [r for r in rows if r["expect"] != "attack" or (r.get("paranoia_level") or 1) <= 2]
        fam = collections.defaultdict(lambda: {"attack": 0, "detected": 0, "benign": 0, "false_positives": 0,
                                               "modsec_detected": 0, "modsec_false_positives": 0})

        def one(r):
            nonlocal n
            n += 1
            ip = f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
            status, blocked = send(host, port, r["method"], r["uri"], r.get("headers"), r.get("body") or "", ip, 200)
            ms = False
            if modsec:
                mh, mp = modsec.rsplit(":", 1)
                mstatus, _ = send(mh, int(mp), r["method"], r["uri"], r.get("headers"), r.get("body") or "", ip, 200)
                ms = mstatus == 403
            return r, blocked, ip, ms

        if name.startswith("csic") and not no_profile:
            # The learned profile (a positive model of the application) needs the site's own
            # traffic: every other normal request, in file order, is sent first as the traffic
            # it learns from (each from its own address, as a 200); only the other half and the
            # anomalous requests are counted. A pause lets the server put what it learned in force.
            normals = [r for r in rows if r["expect"] != "attack"]
            teach = normals[::2]
            taught = {id(r) for r in teach}
            with cf.ThreadPoolExecutor(max_workers=16) as pool:
                list(pool.map(one, teach))
            time.sleep(1.5)
            rows = [r for r in rows if id(r) not in taught]
            out["csic2010_profile_learned_from"] = len(teach)
        fp_ips = {}
        with cf.ThreadPoolExecutor(max_workers=16) as pool:
            for r, blocked, ip, ms in pool.map(one, rows):
                key = r.get("family") or r.get("kind") or "csic"
                f = fam[key]
                if r["expect"] == "attack":
                    f["attack"] += 1
                    f["detected"] += int(blocked)
                    f["modsec_detected"] += int(ms)
                else:
                    f["benign"] += 1
                    f["false_positives"] += int(blocked)
                    f["modsec_false_positives"] += int(ms)
                    if blocked:
                        fp_ips[ip] = key
        time.sleep(0.5)
        by_ip = {e["ip"]: e["detector"] for e in events(binary, data, cfg)}
        for ip, key in fp_ips.items():
            d = fam[key].setdefault("false_positive_detectors", {})
            det = by_ip.get(ip, "unknown")
            d[det] = d.get(det, 0) + 1
        total = {k: sum(f[k] for f in fam.values()) for k in
                 ("attack", "detected", "benign", "false_positives", "modsec_detected", "modsec_false_positives")}
        fam["ALL"] = total
        out[name.split(".")[0]] = dict(sorted(fam.items()))
    # Payload lists: each payload as a query value and as a form field of a fresh client;
    # detected when either is blocked. `benign_text` items are the false-positive check.
    path = os.path.join(corpus, "payloads.jsonl")
    if os.path.exists(path):
        import urllib.parse
        rows = [json.loads(l) for l in open(path)]
        if limit:
            step = max(1, len(rows) // limit)
            rows = rows[::step][:limit]
        cats = collections.defaultdict(lambda: {"attack": 0, "detected": 0, "benign": 0, "false_positives": 0})

        def one_payload(r):
            nonlocal n
            n += 2
            q = urllib.parse.quote(r["payload"], safe="")
            ip1 = f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
            ip2 = f"10.{((n + 1) >> 16) & 255}.{((n + 1) >> 8) & 255}.{(n + 1) & 255}"
            _, b1 = send(host, port, "GET", f"/search?q={q}", {"Accept": "*/*"}, "", ip1, 200)
            _, b2 = send(host, port, "POST", "/comment", {"Content-Type": "application/x-www-form-urlencoded"},
                         f"name=guest&text={q}", ip2, 200)
            return r, b1 or b2

        with cf.ThreadPoolExecutor(max_workers=16) as pool:
            for r, blocked in pool.map(one_payload, rows):
                c = cats[r["category"]]
                if r["expect"] == "attack":
                    c["attack"] += 1
                    c["detected"] += int(blocked)
                else:
                    c["benign"] += 1
                    c["false_positives"] += int(blocked)
        out["payloads"] = dict(sorted(cats.items()))
    proc.terminate()
    proc.wait(timeout=15)
    if nginx_pid:
        os.kill(nginx_pid, 15)
    up.shutdown()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario")
    ap.add_argument("--log")
    ap.add_argument("--labels")
    ap.add_argument("--corpus")
    ap.add_argument("--payload-limit", type=int, default=0)
    ap.add_argument("--speed", type=float, default=1.0, help="replay speed (1.0 = real time)")
    ap.add_argument("--aiwaf", default="target/release/aiwaf")
    ap.add_argument("--modsec", help="`start` (nginx+ModSecurity+CRS via bench/modsec/start.sh) or HOST:PORT: send the request corpora there too")
    ap.add_argument("--no-profile-learning", action="store_true",
                    help="CSIC: do not send half the normal requests first for the learned profile to learn from")
    ap.add_argument("--out", default="bench/results/eval.json")
    a = ap.parse_args()
    res = {"live": live(a.aiwaf, a.scenario, a.speed)} if a.scenario else {}
    if a.log and a.labels:
        res["offline"] = offline(a.aiwaf, a.log, a.labels)
    if a.corpus:
        res["payloads"] = payloads(a.aiwaf, a.corpus, a.payload_limit, a.modsec, a.no_profile_learning)
        res["refused_by_parser"] = REFUSED[0]
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=2)
    if "live" in res:
        print("live replay (aiwaf serve, block mode):")
        print(f"{'label':10} {'clients':>7} {'blocked':>7} {'req→block p50':>14} {'p90':>5} {'403s':>6} {'429s':>6}")
        for lab, r in res["live"]["labels"].items():
            print(f"{lab:10} {r['clients']:7} {r['clients_blocked']:7} {str(r['requests_before_first_block_median']):>14} "
                  f"{str(r['requests_before_first_block_p90']):>5} {r['requests_blocked_403']:6} {r['requests_rate_limited_429']:6}")
        for b in res["live"]["benign_clients_blocked"]:
            print(f"  benign blocked: {b['ip']} {b['detector']}: {b['reason']} ({b['path']})")
    if "offline" in res:
        o = res["offline"]
        print(f"offline (aiwaf train --dry-run on the rendered log, {o['lines']} lines, {o['wall_s']} s):")
        for lab, r in o["by_label"].items():
            print(f"  {lab:10} clients {r['clients']:4} banned {r['banned']:4}")
    if "payloads" in res:
        for corpus, fams in res["payloads"].items():
            if not isinstance(fams, dict):
                print(f"{corpus}: {fams}")
                continue
            print(f"payloads {corpus}:")
            for fam, r in fams.items():
                why = ", ".join(f"{k} {v}" for k, v in sorted(r.get("false_positive_detectors", {}).items()))
                ms = (f" | modsec {r['modsec_detected']}/{r['attack']} fp {r['modsec_false_positives']}"
                      if a.modsec and "modsec_detected" in r else "")
                print(f"  {fam:45} detected {r['detected']:4}/{r['attack']:<4} false positives {r['false_positives']:3}/{r['benign']}"
                      + (f" ({why})" if why else "") + ms)
        print(f"(of the requests counted as stopped, {REFUSED[0]} were refused by the proxy's HTTP parser with 400"
              " before reaching the WAF or the application)")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    sys.exit(main())
