#!/usr/bin/env python3
"""Fetch + verify + unpack of a tar.gz bundle from a local S3 server: `hooks deploy
--bundle s3://…` against `aws s3 cp` followed by `tar -xzf` (awscli from PyPI, installed into
the same virtualenv as scripts/s3-server's moto when `aws` is not on PATH).

The server is s3s-fs by default (`cargo install s3s-fs`, done by this script once): it serves
a ranged GET by reading that range of a file, as S3 does. moto (`--server moto`) copies the
whole object for every ranged GET, so any tool that downloads in parts (both do) spends its
time in moto's copies rather than its own work; its figures say little about either tool.

Runs alternate between the two tools; prints each run, the medians, the ratio (awscli+tar time
/ hooks time: above 1 means hooks is faster), both peak RSS figures (from wait4) and the
CPU-seconds each tool and, when this script started it, the server used. On a small shared
machine the two compete with the server for the same cores, so the CPU figures say where the
time went when the wall-clock times are noisy.

    cargo build --release -p hooks
    bench/s3_fetch.py [--size-mib 1024] [--runs 3] [--server s3s-fs|moto]
                      [--endpoint http://127.0.0.1:PORT]
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOOKS = REPO / "target" / "release" / "hooks"
ENV = dict(
    os.environ,
    AWS_ACCESS_KEY_ID="bench",
    AWS_SECRET_ACCESS_KEY="bench",
    AWS_REGION="us-east-1",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_EC2_METADATA_DISABLED="true",
)


def aws_cli() -> str:
    found = shutil.which("aws")
    if found:
        return found
    venv = Path(os.environ.get("HOOKS_S3_VENV", Path.home() / ".cache/hooks/s3-venv"))
    aws = venv / "bin" / "aws"
    if not aws.exists():
        print(f"installing awscli from PyPI into {venv}", file=sys.stderr)
        if not (venv / "bin" / "pip").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "awscli"], check=True)
    return str(aws)


S3S_FS_VERSION = "0.14.1"


def s3s_fs() -> str:
    """The s3s-fs binary, installed with cargo (from crates.io) when it is missing."""
    found = shutil.which("s3s-fs") or shutil.which(str(Path.home() / ".cargo/bin/s3s-fs"))
    if found:
        return found
    print(f"installing s3s-fs {S3S_FS_VERSION} with cargo (once)", file=sys.stderr)
    subprocess.run(["cargo", "install", "s3s-fs", "--version", S3S_FS_VERSION,
                    "--features", "binary", "--locked"], check=True)
    return str(Path.home() / ".cargo/bin/s3s-fs")


def start_s3s_fs(work: Path):
    """Starts s3s-fs on a free loopback port; returns (endpoint, process)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = work / "s3s-data"
    data.mkdir()
    log = open(work / "s3s-fs.log", "wb")
    proc = subprocess.Popen(
        [s3s_fs(), "--host", "127.0.0.1", "--port", str(port),
         "--access-key", ENV["AWS_ACCESS_KEY_ID"], "--secret-key", ENV["AWS_SECRET_ACCESS_KEY"],
         str(data)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                sys.exit(f"s3s-fs did not start; see {work / 's3s-fs.log'}")
            time.sleep(0.05)
    return f"http://127.0.0.1:{port}", proc


def run(cmd, **kw):
    """Runs cmd; returns (seconds, peak RSS in MiB, CPU-seconds) of that child alone."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=ENV, **kw)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed with exit {proc.returncode}: {' '.join(map(str, cmd))}")
    return elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def cpu_seconds(pid):
    """User + system CPU-seconds a running process has used so far, or None if unknown."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_bundle(dir: Path, size_mib: int):
    """Incompressible files (so the tar.gz is about size_mib) plus an appspec."""
    (dir / "bin").mkdir(parents=True)
    (dir / "appspec.yml").write_text("version: 0.0\nos: linux\n")
    left = size_mib << 20
    n = 0
    while left > 0:
        part = min(left, 16 << 20)
        (dir / "bin" / f"blob{n:04}").write_bytes(os.urandom(part))
        left -= part
        n += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024, help="artifact size (default 1024)")
    ap.add_argument("--runs", type=int, default=3, help="runs per tool (default 3)")
    ap.add_argument("--server", choices=("s3s-fs", "moto"), default="s3s-fs",
                    help="the S3 server to start (default s3s-fs; see above)")
    ap.add_argument("--endpoint", help="an S3 server already running (instead of --server)")
    ap.add_argument("--hooks", type=Path, help="the hooks binary (default: target/release/hooks)")
    args = ap.parse_args()
    hooks = args.hooks or HOOKS
    if not hooks.exists():
        sys.exit(f"{hooks} is missing: run `cargo build --release -p hooks` first")
    aws = aws_cli()
    work = Path(tempfile.mkdtemp(prefix="hooks-s3-bench-"))
    server = None
    s3s = None
    try:
        endpoint = args.endpoint
        if endpoint:
            args.server = endpoint
        elif args.server == "s3s-fs":
            endpoint, s3s = start_s3s_fs(work)
        else:
            out = subprocess.run([str(REPO / "scripts/s3-server"), "start", str(work / "s3")],
                                 check=True, capture_output=True, text=True).stdout
            endpoint = out.strip().split("=", 1)[1]
            server = work / "s3"
        bucket = f"bench{os.getpid()}"
        subprocess.run([aws, "--endpoint-url", endpoint, "s3", "mb", f"s3://{bucket}"],
                       env=ENV, check=True, capture_output=True)
        print(f"making a {args.size_mib} MiB bundle …", file=sys.stderr)
        make_bundle(work / "src", args.size_mib)
        url = subprocess.run(
            [str(hooks), "publish", str(work / "src"), "--to", f"s3://{bucket}/bench/",
             "--s3-endpoint", endpoint],
            env=ENV, check=True, capture_output=True, text=True).stdout.strip()
        shutil.rmtree(work / "src")
        results = {"hooks": [], "aws+tar": []}
        server_pid = s3s.pid if s3s else None
        for i in range(args.runs):
            for tool in ("hooks", "aws+tar") if i % 2 == 0 else ("aws+tar", "hooks"):
                dest = work / "dest"
                server_before = cpu_seconds(server_pid)
                if tool == "hooks":
                    t, rss, cpu = run([str(hooks), "deploy", "--root", str(dest), "--bundle", url,
                                  "--s3-endpoint", endpoint, "--quiet"], stdout=subprocess.DEVNULL)
                else:
                    dest.mkdir()
                    t1, rss1, cpu1 = run([aws, "--endpoint-url", endpoint, "--only-show-errors", "s3",
                                    "cp", url, str(work / "bundle.tgz")])
                    t2, rss2, cpu2 = run(["tar", "-xzf", str(work / "bundle.tgz"), "-C", str(dest)])
                    (work / "bundle.tgz").unlink()
                    t, rss, cpu = t1 + t2, max(rss1, rss2), cpu1 + cpu2
                server_after = cpu_seconds(server_pid)
                server_cpu = None if server_before is None else server_after - server_before
                shutil.rmtree(dest)
                results[tool].append((t, rss, cpu, server_cpu))
                served = "" if server_cpu is None else f", server {server_cpu:5.2f}"
                print(f"run {i + 1} {tool:8} {t:7.2f} s  peak RSS {rss:7.1f} MiB  "
                      f"CPU-s {cpu:5.2f}{served}", flush=True)
        med = {k: statistics.median(r[0] for r in v) for k, v in results.items()}
        rss = {k: max(r[1] for r in v) for k, v in results.items()}
        cpu = {k: statistics.median(r[2] for r in v) for k, v in results.items()}
        server_cpu = {k: None if v[0][3] is None else statistics.median(r[3] for r in v)
                      for k, v in results.items()}
        mib_s = args.size_mib / med["hooks"]
        print(f"\nartifact {args.size_mib} MiB, {args.runs} runs each (alternating), "
              f"server {args.server}")
        print(f"hooks deploy (fetch+verify+unpack): median {med['hooks']:.2f} s "
              f"({mib_s:.0f} MiB/s), peak RSS {rss['hooks']:.1f} MiB")
        print(f"aws s3 cp + tar -xzf:              median {med['aws+tar']:.2f} s, "
              f"peak RSS {rss['aws+tar']:.1f} MiB")
        for tool in results:
            served = "" if server_cpu[tool] is None else f", the server's {server_cpu[tool]:.2f}"
            print(f"CPU-seconds, median, {tool}: its own {cpu[tool]:.2f}{served}")
        print(f"ratio (aws+tar / hooks): {med['aws+tar'] / med['hooks']:.2f}x (goal >= 2.0x); "
              f"hooks peak RSS goal <= 64 MiB")
    finally:
        if s3s:
            s3s.terminate()
            s3s.wait()
        if server:
            subprocess.run([str(REPO / "scripts/s3-server"), "stop", str(server)])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
