#!/usr/bin/env python3
"""Deploy overhead of `hooks`: a bundle with one no-op script per scriptable event.

Runs N deployments (default 25, at least 20) into a fresh root and prints the median wall time,
the median time per event (from the deployment logs' event footers), and, measured in the same
run on the same bundle, a baseline: a minimal shell deploy (copy the bundle, run the same
scripts in the same order, switch a symlink), i.e. the floor any tool pays.

Usage: bench/deploy_overhead.py [--runs N] [--hooks PATH]
(build first: cargo build --release -p hooks)
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time

EVENTS = [
    "BeforeBlockTraffic", "AfterBlockTraffic", "ApplicationStop", "BeforeInstall",
    "AfterInstall", "ApplicationStart", "ValidateService", "BeforeAllowTraffic",
    "AfterAllowTraffic",
]


def make_bundle(path):
    os.makedirs(os.path.join(path, "scripts"))
    lines = ["version: 0.0", "os: linux", "hooks:"]
    for event in EVENTS:
        script = os.path.join(path, "scripts", event + ".sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\nexit 0\n")
        os.chmod(script, 0o755)
        lines += [f"  {event}:", f"    - location: scripts/{event}.sh"]
    lines += ["deploy:", "  traffic: true", "  keep_releases: 3"]
    with open(os.path.join(path, "appspec.yml"), "w") as f:
        f.write("\n".join(lines) + "\n")


def baseline(bundle, root, n):
    release = os.path.join(root, "releases", str(n))
    shutil.copytree(bundle, release)
    for event in EVENTS:
        subprocess.run([os.path.join(release, "scripts", event + ".sh")], cwd=release, check=True)
    tmp = os.path.join(root, "current.tmp")
    os.symlink(release, tmp)
    os.replace(tmp, os.path.join(root, "current"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--hooks", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "hooks"))
    args = parser.parse_args()
    runs = max(args.runs, 20)
    work = tempfile.mkdtemp(prefix="hooks-bench-")
    try:
        bundle = os.path.join(work, "bundle")
        make_bundle(bundle)
        root = os.path.join(work, "root")
        base_root = os.path.join(work, "baseline")
        os.makedirs(os.path.join(base_root, "releases"))
        hooks_times, base_times = [], []
        per_event = {e: [] for e in EVENTS + ["DownloadBundle", "Install"]}
        for n in range(runs):
            # Alternate the two so drift on the machine affects both alike.
            start = time.perf_counter()
            subprocess.run([args.hooks, "deploy", "--quiet", "--root", root, "--bundle", bundle], check=True)
            hooks_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            baseline(bundle, base_root, n)
            base_times.append(time.perf_counter() - start)
        for log in os.listdir(os.path.join(root, "logs")):
            text = open(os.path.join(root, "logs", log)).read()
            for event, secs in re.findall(r"<== (\w+) succeeded in ([0-9.]+) s", text):
                if event in per_event:
                    per_event[event].append(float(secs))
        med = statistics.median(hooks_times)
        base = statistics.median(base_times)
        print(f"deploy overhead: {runs} deployments, 9 no-op scripts each")
        print(f"  hooks deploy     median {med * 1000:8.1f} ms")
        print(f"  shell baseline   median {base * 1000:8.1f} ms   (copy + run scripts + symlink)")
        print(f"  ratio hooks/baseline: {med / base:.2f}x")
        print("  per event (median ms):")
        for event, values in per_event.items():
            if values:
                print(f"    {event:<20} {statistics.median(values) * 1000:7.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
