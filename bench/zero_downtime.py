#!/usr/bin/env python3
"""Zero-downtime benchmark on the project's own stack (docker-compose.yml + production.yml).

A constant load of GET /version through nginx (each request on a new connection) runs while
the api is redeployed 5 times, then once more with a release whose api never becomes healthy
(it listens on 8081, where its healthcheck does not ask). Three passes on the same files, each
on a fresh stack of its own: `hooks deploy` of bundles with `deploy.compose`, `hooks compose up
--build`, and Docker Compose v2 `up -d --wait --build`. It prints the failed requests (an error
or a status other than 200) of each pass, for the redeploys and for the failing release apart.

    cargo build --release -p hooks
    bench/zero_downtime.py [--requests 10000] [--rate 200] [--prefix zd]
                           [--passes deploy,up,v2] [--logs DIR]

`--logs DIR` keeps, per pass, nginx's output (its error log says what failed: refused,
timed out, no live upstreams), the failed requests with their times relative to each
deployment, and the tools' own output.

Needs a Docker engine, `scripts/stack-images` (base images and the static binaries; the base
images it creates are removed afterwards), and Compose v2 from `scripts/compose-v2`. Never a
test: it prints figures.
"""

import argparse
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "api.hitsave.io"
LABEL = "org.hitsave.bench"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sh(*args, env=None, check=True, quiet=True):
    out = subprocess.run(
        [str(a) for a in args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if check and out.returncode != 0:
        sys.exit(f"{' '.join(map(str, args))} failed ({out.returncode}):\n{out.stdout[-4000:]}")
    if not quiet:
        print(out.stdout, end="")
    return out


class Load:
    """Requests at a constant rate, each on a new connection, from a few threads."""

    def __init__(self, port, rate):
        self.port, self.rate = port, rate
        self.results = []  # (time, ok, detail)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.next = time.monotonic()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(8)]

    def ticket(self):
        with self.lock:
            t = self.next
            self.next += 1.0 / self.rate
        return t

    def run(self):
        while not self.stop.is_set():
            at = self.ticket()
            delay = at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            ok, detail = True, ""
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", "/version", headers={"Host": HOST, "Connection": "close"})
                response = conn.getresponse()
                body = response.read()
                conn.close()
                if response.status != 200:
                    ok, detail = False, f"HTTP {response.status}"
                else:
                    detail = body.decode(errors="replace")
            except Exception as e:  # every failure counts, whatever it is
                ok, detail = False, type(e).__name__
            with self.lock:
                self.results.append((time.monotonic(), ok, detail))

    def start(self):
        for t in self.threads:
            t.start()

    def count(self):
        with self.lock:
            return len(self.results)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()
        return sorted(self.results)


class Stack:
    """One fresh copy of the stack: its own project, tag, port, secrets and root."""

    def __init__(self, work, name, binaries):
        self.dir = work / name
        self.dir.mkdir()
        self.name = name
        self.binaries = binaries
        self.port = free_port()
        self.secrets = self.dir / "secrets"
        self.secrets.mkdir()
        password = f"pw-{os.getpid()}-{time.time_ns():x}"
        for secret, value in [
            ("postgres_password", password),
            ("database_url", f"postgres://hitsave:{password}@postgres:5432/hitsave"),
        ]:
            path = self.secrets / secret
            path.write_text(value + "\n")
            path.chmod(0o600)
        self.env = dict(
            os.environ,
            HITSAVE_TAG=name,
            HITSAVE_HTTP_PORT=str(self.port),
            HITSAVE_SECRETS_DIR=str(self.secrets),
        )
        self.env.pop("COMPOSE_PROJECT_NAME", None)

    def release(self, n, listen="0.0.0.0:8080"):
        """A release directory like the stack test's bundles: the compose files, contexts,
        static binaries, config.yml with `version: n`, and an appspec with deploy.compose."""
        rel = self.dir / f"release-{n}"
        rel.mkdir()
        for f in ["docker-compose.yml", "production.yml"]:
            shutil.copy(ROOT / f, rel / f)
        shutil.copytree(ROOT / "deploy/docker/proxy", rel / "deploy/docker/proxy")
        api = rel / "deploy/docker/sample-service"
        (api / "bin").mkdir(parents=True)
        source = ROOT / "deploy/docker/sample-service"
        for context in [api, rel / "deploy/docker/proxy"]:
            text = (source / "Dockerfile").read_text() if context == api else (context / "Dockerfile").read_text()
            (context / "Dockerfile").write_text(f"{text}LABEL {LABEL}={self.name}\n")
        config = (source / "config.yml").read_text().replace("listen: 0.0.0.0:8080", f"listen: {listen}")
        (api / "config.yml").write_text(f'{config}version: "{n}"\n')
        for b in ["sample-service", "migrator"]:
            shutil.copy(self.binaries / b, api / "bin" / b)
        (rel / "appspec.yml").write_text(
            "version: 0.0\nos: linux\ndeploy:\n  compose:\n"
            "    files: [docker-compose.yml, production.yml]\n"
            f"    project: {self.name}\n    health_deadline: 60\n"
        )
        return rel

    def files(self, rel):
        return ["-f", rel / "docker-compose.yml", "-f", rel / "production.yml", "-p", self.name]

    def wait_version(self, n, deadline=120):
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/version", headers={"Host": HOST})
                r = conn.getresponse()
                if r.status == 200 and f'"version":"{n}"' in r.read().decode():
                    return
            except OSError:
                pass
            time.sleep(0.1)
        sys.exit(f"{self.name}: release {n} not serving through nginx after {deadline} s")


def images_labelled(name):
    out = sh("docker", "images", "-q", "--filter", f"label={LABEL}={name}", check=False)
    return sorted(set(out.stdout.split()))


def one_pass(tool, stack, args, hooks, compose_v2):
    """Deploys release 1, then 5 redeploys and the never-healthy release under load."""
    phases = []  # (name, start, end, exit code, output)

    def deploy(rel):
        if tool == "hooks deploy":
            cmd = [hooks, "--root", stack.dir / "root", "deploy", "--bundle", rel, "--quiet"]
        elif tool == "hooks compose up":
            cmd = [hooks, "--root", stack.dir / "root", "compose", "up", "--build", "--timeout", "30", *stack.files(rel)]
        else:
            cmd = [compose_v2, *stack.files(rel), "up", "-d", "--wait", "--wait-timeout", "30", "--build"]
        started = time.monotonic()
        out = sh(*cmd, env=stack.env, check=False)
        phases.append((rel.name, started, time.monotonic(), out.returncode, out.stdout))
        return out.returncode, time.monotonic() - started, out.stdout

    code, took, log = deploy(stack.release(1))
    if code != 0:
        sys.exit(f"{tool}: first deployment failed ({code}):\n{log[-4000:]}")
    stack.wait_version(1)
    releases = [stack.release(n) for n in range(2, 7)]
    bad = stack.release(7, listen="0.0.0.0:8081")
    load = Load(stack.port, args.rate)
    load.start()
    time.sleep(1)  # some load before the first redeploy; not a synchronisation
    walls = []
    for n, rel in enumerate(releases, start=2):
        code, took, log = deploy(rel)
        if code != 0:
            load.finish()
            sys.exit(f"{tool}: redeploy {n} failed ({code}):\n{log[-4000:]}")
        walls.append(took)
    bad_started = time.monotonic()
    bad_code, bad_took, bad_log = deploy(bad)
    # Keep the load on until the request count is reached (and a few seconds after the failure).
    settle = time.monotonic() + 3
    while load.count() < args.requests or time.monotonic() < settle:
        time.sleep(0.05)
    results = load.finish()
    before = [r for r in results if r[0] < bad_started]
    after = [r for r in results if r[0] >= bad_started]
    failed = lambda rs: sum(1 for r in rs if not r[1])
    kinds = sorted({r[2] for r in results if not r[1]})
    versions = {r[2] for r in results[-50:] if r[1]}
    if args.logs:
        keep_logs(Path(args.logs) / tool.replace(" ", "-"), stack, results, phases)
    return {
        "requests": len(results),
        "failed_redeploys": failed(before),
        "requests_redeploys": len(before),
        "failed_bad": failed(after),
        "requests_bad": len(after),
        "bad_exit": bad_code,
        "wall_median": sorted(walls)[len(walls) // 2],
        "bad_wall": bad_took,
        "errors": kinds[:5],
        "serving_at_end": sorted(versions)[:3],
    }


def keep_logs(out, stack, results, phases):
    """nginx's output, the failures placed in the deployments' timeline, the tools' output."""
    out.mkdir(parents=True, exist_ok=True)
    proxy = sh("docker", "logs", f"{stack.name}-proxy-1", check=False)
    (out / "nginx.log").write_text(proxy.stdout)
    with open(out / "failures.txt", "w") as f:
        for at, ok, detail in results:
            if ok:
                continue
            where = "between deployments"
            for name, start, end, _, _ in phases:
                if start <= at <= end + 5:
                    where = f"{name} +{at - start:.2f} s (it took {end - start:.2f} s)"
            f.write(f"{detail}: {where}\n")
    for name, start, end, code, output in phases:
        (out / f"{name}.out").write_text(f"exit {code}, {end - start:.2f} s\n{output}")
    logs = stack.dir / "root" / "logs"
    if logs.is_dir():
        for log in logs.iterdir():
            shutil.copy(log, out / log.name)
    errors = [line for line in proxy.stdout.splitlines() if "[error]" in line or "[warn]" in line]
    print(f"   nginx: {len(errors)} error/warn lines (kept in {out})", flush=True)
    for line in errors[:10]:
        print(f"     {line[:300]}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--prefix", default="zd")
    parser.add_argument("--hooks", default=str(ROOT / "target/release/hooks"))
    parser.add_argument("--passes", default="deploy,up,v2",
                        help="which passes to run, comma-separated: deploy, up, v2")
    parser.add_argument("--logs", help="keep each pass's logs under this directory")
    args = parser.parse_args()
    passes = {"deploy": "hooks deploy", "up": "hooks compose up", "v2": "compose v2"}
    wanted = args.passes.split(",")
    if not wanted or any(p not in passes for p in wanted):
        sys.exit(f"--passes: a comma-separated list of {', '.join(passes)}")
    if args.requests < 10000:
        sys.exit("--requests: at least 10000")
    compose_v2 = sh(ROOT / "scripts/compose-v2").stdout.strip().rsplit("=", 1)[-1]
    work = Path(tempfile.mkdtemp(prefix="hooks-zd-"))
    binaries = work / "bin"
    sh(ROOT / "scripts/stack-images", "binaries", binaries)
    created = sh(ROOT / "scripts/stack-images", "base").stdout.split()
    stacks = []
    try:
        rows = []
        for i, tool in enumerate([passes[p] for p in wanted]):
            stack = Stack(work, f"{args.prefix}-{i}-{os.getpid()}", binaries)
            stacks.append(stack)
            print(f"== {tool} (project {stack.name}, nginx on 127.0.0.1:{stack.port})", flush=True)
            result = one_pass(tool, stack, args, args.hooks, compose_v2)
            print(f"   {result}", flush=True)
            rows.append((tool, result))
        print()
        print(f"{'tool':18} {'requests':>9} {'failed (5 redeploys)':>21} {'failed (never healthy)':>23} {'exit':>5} {'deploy median':>14}")
        for tool, r in rows:
            print(
                f"{tool:18} {r['requests']:9d} {r['failed_redeploys']:>10d} of {r['requests_redeploys']:<7d}"
                f" {r['failed_bad']:>11d} of {r['requests_bad']:<7d} {r['bad_exit']:5d} {r['wall_median']:13.2f}s"
            )
    finally:
        for stack in stacks:
            if stack.dir.joinpath("release-1").exists():
                sh(args.hooks, "--root", stack.dir / "root", "compose", "down", "--volumes",
                   *stack.files(stack.dir / "release-1"), env=stack.env, check=False)
                sh(compose_v2, *stack.files(stack.dir / "release-1"), "down", "-v", env=stack.env, check=False)
            for image in images_labelled(stack.name):
                sh("docker", "rmi", "-f", image, check=False)
        for tag in created:
            sh("docker", "rmi", tag, check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
