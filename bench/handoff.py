#!/usr/bin/env python3
"""Requests lost while the sample service is deployed under constant load.

Three instances of the sample service run under the built-in supervisor (`deploy.services`,
socket hand-off, rolling restart with a health check after each instance) behind nginx from
Debian's packages (installed with apt-get when missing). A load generator sends requests at a
constant rate through nginx while `hooks deploy` alternates two releases; the run ends after
at least --requests requests. Printed: requests sent, failed (connection error, timeout or
non-200), and each deployment's wall time (median and max).

Usage: bench/handoff.py [--requests N] [--rate R] [--profile target/release]
(build first: cargo build --release -p hooks -p sample-service)
"""
import argparse
import http.client
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def free_base(count):
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        base = s.getsockname()[1]
        s.close()
        if base + count >= 65535:
            continue
        ok = True
        for p in range(base, base + count):
            t = socket.socket()
            try:
                t.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                t.close()
        if ok:
            return base


def ensure_nginx():
    if shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"):
        return shutil.which("nginx") or "/usr/sbin/nginx"
    print("installing nginx-light from Debian's packages", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "nginx-light"], check=True, env=env)
    return shutil.which("nginx") or "/usr/sbin/nginx"


def bundle(work, name, version, base, db_url_file, service_bin):
    d = os.path.join(work, "bundles", name)
    os.makedirs(os.path.join(d, "bin"))
    os.makedirs(os.path.join(d, "config"))
    shutil.copy(service_bin, os.path.join(d, "bin", "sample-service"))
    for i in range(3):
        with open(os.path.join(d, "config", f"instance-{i + 1}.yml"), "w") as f:
            f.write(f"listen: 127.0.0.1:{base + i}\ndatabase_url_file: {db_url_file}\n"
                    f"version: \"{version}\"\ndrain_timeout_secs: 10\n")
    with open(os.path.join(d, "appspec.yml"), "w") as f:
        f.write(f"""version: 0.0
os: linux
deploy:
  keep_releases: 3
  services:
    - name: sample
      command: bin/sample-service
      instances: 3
      config_path: config/instance-%i.yml
      listen: 127.0.0.1:{base}
      health: {{type: http, path: /health, interval: 50ms, deadline: 20s}}
      drain: 10s
""")
    return d


def instance_version(port):
    """The version one instance reports on /version, asked directly (not through nginx)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", "/version")
        return json.loads(c.getresponse().read()).get("version")
    finally:
        c.close()


def load(port, rate, total, counts, stop):
    """Sends `total` requests at `rate` per second from a pool of threads, each request on a
    fresh connection (the worst case for a hand-off)."""
    interval = 1.0 / rate
    start = time.monotonic()
    lock = threading.Lock()
    next_index = [0]

    def worker():
        while not stop.is_set():
            with lock:
                i = next_index[0]
                if i >= total:
                    return
                next_index[0] += 1
            due = start + i * interval
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                c.request("GET", "/version")
                r = c.getresponse()
                r.read()
                c.close()
                ok = r.status == 200
            except Exception:  # noqa: BLE001 - every failure counts as a lost request
                ok = False
            with lock:
                counts["ok" if ok else "failed"] += 1

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=12000)
    ap.add_argument("--rate", type=float, default=400.0, help="requests per second")
    ap.add_argument("--profile", default="target/release")
    args = ap.parse_args()
    hooks = os.path.join(REPO, args.profile, "hooks")
    service_bin = os.path.join(REPO, args.profile, "sample-service")
    for b in (hooks, service_bin):
        if not os.path.exists(b):
            sys.exit(f"{b} is missing: cargo build --release -p hooks -p sample-service")
    nginx = ensure_nginx()
    work = tempfile.mkdtemp(prefix="hooks-handoff-")
    root = os.path.join(work, "root")
    env = dict(os.environ, HOOKS_ROOT=root)
    db = os.path.join(work, "app.db")
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE items (id TEXT PRIMARY KEY, body TEXT NOT NULL, created_at TEXT NOT NULL)")
    con.commit()
    con.close()
    url_file = os.path.join(work, "database_url")
    with open(url_file, "w") as f:
        f.write(f"sqlite://{db}")
    base = free_base(4)
    front = base + 3
    bundles = [bundle(work, n, n, base, url_file, service_bin) for n in ("v1", "v2")]
    nginx_dir = os.path.join(work, "nginx")
    os.makedirs(os.path.join(nginx_dir, "logs"))
    conf = os.path.join(nginx_dir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off;
worker_processes 1;
error_log {nginx_dir}/logs/error.log warn;
pid {nginx_dir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  upstream sample {{
    server 127.0.0.1:{base};
    server 127.0.0.1:{base + 1};
    server 127.0.0.1:{base + 2};
  }}
  server {{
    listen 127.0.0.1:{front};
    location / {{ proxy_pass http://sample; }}
  }}
}}
""")
    proxy = subprocess.Popen([nginx, "-p", nginx_dir, "-c", conf])
    deploy_times = []
    try:
        first = subprocess.run([hooks, "deploy", "--bundle", bundles[0], "--quiet"], env=env,
                               capture_output=True, text=True)
        if first.returncode != 0:
            sys.exit("the first deployment failed; see " + root + "/logs")
        deadline = time.monotonic() + 10
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", front, timeout=2)
                c.request("GET", "/version")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                sys.exit("nginx did not answer")
            time.sleep(0.05)
        counts = {"ok": 0, "failed": 0}
        stop = threading.Event()
        loader = threading.Thread(target=load, args=(front, args.rate, args.requests, counts, stop))
        started = time.monotonic()
        loader.start()
        n = 0
        codes = []
        while loader.is_alive():
            t0 = time.monotonic()
            r = subprocess.run([hooks, "deploy", "--bundle", bundles[(n + 1) % 2], "--quiet"],
                               env=env, capture_output=True, text=True)
            if r.returncode != 0:
                print(r.stderr, end="", file=sys.stderr)
            deploy_times.append(time.monotonic() - t0)
            codes.append(r.returncode)
            # A deployment counts only if every instance now serves the new release: a
            # hand-off that silently kept the old processes would make the figures meaningless.
            expected = f"v{(n + 1) % 2 + 1}"
            for i in range(3):
                served = instance_version(base + i)
                if r.returncode == 0 and served != expected:
                    stop.set()
                    sys.exit(f"after deployment {n + 1}, instance {i + 1} serves {served!r}, "
                             f"not {expected!r}")
            n += 1
        loader.join()
        elapsed = time.monotonic() - started
        total = counts["ok"] + counts["failed"]
        print(f"requests: {total} in {elapsed:.1f} s ({total / elapsed:.0f}/s) through nginx to 3 instances")
        print(f"failed requests during deployments: {counts['failed']}")
        print(f"deployments: {n} (exit codes {sorted(set(codes))}), each a rolling hand-off of 3 instances")
        print(f"deployment wall time: median {statistics.median(deploy_times):.2f} s, max {max(deploy_times):.2f} s")
    finally:
        subprocess.run([hooks, "supervise", "--shutdown"], env=env, stdout=subprocess.DEVNULL)
        proxy.terminate()
        proxy.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
