"""The scaled-out topology as plain processes on 127.0.0.1, for tests and benchmarks.

The same shape as docker-compose.yml: PostgreSQL (already running), N
`pactwatch serve --no-workers` replicas behind a proxy (nginx when it is
installed, else bench/proxy.py), and each worker kind twice (one active, one
standby). `python -m bench.cluster up` starts it and keeps it until Ctrl-C
or SIGTERM; `Cluster` does the same from Python.
"""
from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from app.leader import holder

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
ADMIN_TOKEN = "cluster-admin-token"
WORKER_KINDS = ("projections", "webhooks")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_database(server_url: str, prefix: str = "pw_cluster") -> str:
    """Create an empty database on the server; returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(database_url: str) -> None:
    url = make_url(database_url)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    admin.dispose()


def worker_kinds() -> list[str]:
    """The `pactwatch worker` commands this checkout has."""
    from app.cli import worker_cli

    names = {c.name or (c.callback.__name__ if c.callback else "") for c in worker_cli.registered_commands}
    return [k for k in WORKER_KINDS if k in names]


def nginx_config(workdir: Path, port: int, upstreams: list[int]) -> str:
    """An nginx configuration like deploy/nginx.conf, for 127.0.0.1 and a scratch directory."""
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    servers = "\n".join(f"    server 127.0.0.1:{p};" for p in upstreams)
    temp = "\n".join(f"  {kind}_temp_path {workdir}/nginx-{kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""{user}worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
{temp}
  client_max_body_size 2m;
  map $http_x_request_id $pactwatch_request_id {{ default $http_x_request_id; "" $request_id; }}
  upstream pactwatch {{
{servers}
    keepalive 128;
    keepalive_timeout 4s;
  }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://pactwatch;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Request-ID $pactwatch_request_id;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_next_upstream error timeout;
      proxy_read_timeout 60s;
    }}
  }}
}}
"""


@dataclass
class Proc:
    """One process of the topology."""

    name: str
    role: str
    args: list[str]
    log: Path
    port: int | None = None
    popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


@dataclass
class Cluster:
    """Replicas behind a proxy and single-active workers with standbys, on one PostgreSQL database."""

    database_url: str
    replicas: int = 2
    standbys: int = 1
    proxy: str = "auto"  # "nginx", "python" or "auto"
    env: dict[str, str] = field(default_factory=dict)
    workdir: Path | None = None
    kinds: list[str] | None = None
    procs: list[Proc] = field(default_factory=list)
    admin_token: str = field(default_factory=lambda: os.environ.get("PACTWATCH_ADMIN_TOKEN") or ADMIN_TOKEN)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir or tempfile.mkdtemp(prefix="pactwatch-cluster-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.kinds = worker_kinds() if self.kinds is None else self.kinds
        self.proxy_port = free_port()
        self._engine: Engine | None = None

    # Addresses.

    @property
    def url(self) -> str:
        """The proxy: what clients use."""
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def replica_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p.port}" for p in self.procs if p.role == "api"]

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_engine(self.database_url, pool_size=2)
        return self._engine

    # Starting and stopping.

    def process_env(self) -> dict[str, str]:
        env = {**os.environ, "PACTWATCH_DATABASE_URL": self.database_url,
               "PACTWATCH_ADMIN_TOKEN": self.admin_token, "PYTHONUNBUFFERED": "1", **self.env}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        return env

    def _spawn(self, proc: Proc) -> Proc:
        with open(proc.log, "ab") as out:
            proc.popen = subprocess.Popen(proc.args, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                          env=self.process_env(), start_new_session=True)
        self.procs.append(proc)
        return proc

    def start_replica(self, n: int) -> Proc:
        port = free_port()
        return self._spawn(Proc(f"api{n}", "api", [sys.executable, "-m", "app.cli", "serve", "--no-workers",
                                                   "--host", "127.0.0.1", "--port", str(port)],
                                self.workdir / f"api{n}.log", port))

    def start_worker(self, kind: str, n: int) -> Proc:
        return self._spawn(Proc(f"{kind}{n}", kind, [sys.executable, "-m", "app.cli", "worker", kind],
                                self.workdir / f"{kind}{n}.log"))

    def start_proxy(self, upstreams: list[int] | None = None, name: str = "proxy", port: int | None = None) -> Proc:
        """A proxy in front of these replica ports (default: every replica), nginx when installed."""
        ports = upstreams or [p.port for p in self.procs if p.role == "api" and p.port is not None]
        port = port or (self.proxy_port if name == "proxy" else free_port())
        nginx = shutil.which("nginx") or next((c for c in ("/usr/sbin/nginx",) if os.path.exists(c)), None)
        if self.proxy == "nginx" or (self.proxy == "auto" and nginx):
            if nginx is None:
                raise RuntimeError("nginx is not installed")
            prefix = self.workdir / name
            prefix.mkdir(exist_ok=True)
            conf = prefix / "nginx.conf"
            conf.write_text(nginx_config(prefix, port, ports))
            args = [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "nginx-error.log")]
            self.proxy_kind = "nginx"
        else:
            args = [sys.executable, "-m", "bench.proxy", "--port", str(port),
                    *[f"http://127.0.0.1:{p}" for p in ports]]
            self.proxy_kind = "python"
        proc = self._spawn(Proc(name, "proxy", args, self.workdir / f"{name}.log", port))
        self._wait_ready(f"http://127.0.0.1:{port}", time.monotonic() + 30)
        return proc

    def start(self, timeout: float = 60.0) -> Cluster:
        """Start everything and wait until the proxy serves and every worker kind has a leader."""
        try:
            for n in range(1, self.replicas + 1):
                self.start_replica(n)
            for kind in self.kinds or []:
                for n in range(1, self.standbys + 2):
                    self.start_worker(kind, n)
            deadline = time.monotonic() + timeout
            for url in self.replica_urls:
                self._wait_ready(url, deadline)
            self.start_proxy()
            for kind in self.kinds or []:
                self.wait_for_leader(kind, deadline - time.monotonic())
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, url: str, deadline: float) -> None:
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{url} is not ready\n{self.logs()}")

    def _check_alive(self) -> None:
        dead = [p for p in self.procs if not p.alive() and p.popen is not None and p.popen.returncode not in
                (-signal.SIGKILL, -signal.SIGTERM, 0)]
        if dead:
            raise RuntimeError(f"{dead[0].name} exited with {dead[0].popen.returncode}\n{dead[0].tail()}")

    def stop(self, timeout: float = 15.0) -> dict[str, int | None]:
        """SIGTERM every process (proxy first, workers last), SIGKILL what outlives the timeout; their exit codes."""
        order = [p for role in ("proxy", "api", *WORKER_KINDS) for p in self.procs if p.role == role]
        order = [p for p in order if p.popen is not None]
        for proc in order:
            if proc.alive():
                proc.popen.send_signal(signal.SIGQUIT if self.proxy_kind_of(proc) == "nginx" else signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes: dict[str, int | None] = {}
        for proc in order:
            try:
                codes[proc.name] = proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                codes[proc.name] = proc.popen.wait()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        return codes

    def proxy_kind_of(self, proc: Proc) -> str | None:
        return getattr(self, "proxy_kind", None) if proc.role == "proxy" else None

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # Workers.

    def leader(self, kind: str) -> Proc | None:
        """The process that holds the advisory lock of a worker kind."""
        name = holder(self.engine, kind) or ""
        if not name.startswith(f"pactwatch:{kind}:"):
            return None
        pid = int(name.rsplit(":", 1)[-1])
        return next((p for p in self.procs if p.role == kind and p.popen is not None and p.pid == pid), None)

    def wait_for_leader(self, kind: str, timeout: float = 30.0, other_than: Proc | None = None) -> Proc:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.leader(kind)
            if found is not None and found is not other_than and found.alive():
                return found
            time.sleep(0.05)
        raise TimeoutError(f"no active {kind} worker\n{self.logs()}")

    def kill(self, proc: Proc, sig: int = signal.SIGKILL) -> None:
        proc.popen.send_signal(sig)
        proc.popen.wait(10)

    def logs(self, lines: int = 15) -> str:
        return "\n".join(f"--- {p.name} ({p.log})\n{p.tail(lines)}" for p in self.procs)


def main() -> None:
    parser = argparse.ArgumentParser(description="Start the scaled-out topology on 127.0.0.1 until interrupted.")
    parser.add_argument("command", choices=["up"])
    parser.add_argument("--database-url", default=os.environ.get("PACTWATCH_DATABASE_URL"),
                        help="a PostgreSQL URL (default PACTWATCH_DATABASE_URL); with --fresh, the server to use")
    parser.add_argument("--fresh", action="store_true", help="create a new empty database (dropped at the end)")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--proxy", choices=["auto", "nginx", "python"], default="auto")
    args = parser.parse_args()
    url = args.database_url or DEFAULT_SERVER
    if not url.startswith("postgresql"):
        parser.error("the cluster needs PostgreSQL: give --database-url postgresql+psycopg://...")
    if args.fresh:
        url = create_database(url)
    cluster = Cluster(url, replicas=args.replicas, proxy=args.proxy)
    stopping = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        cluster.start()
        print(f"pactwatch cluster on {make_url(url).render_as_string(hide_password=True)}", flush=True)
        print(f"  proxy ({cluster.proxy_kind}): {cluster.url}", flush=True)
        for proc in cluster.procs:
            where = f"http://127.0.0.1:{proc.port}" if proc.port else ""
            print(f"  {proc.name:<13} pid {proc.pid:<7} {where} log {proc.log}", flush=True)
        shown = cluster.admin_token if cluster.admin_token == ADMIN_TOKEN else "$PACTWATCH_ADMIN_TOKEN"
        print(f"  admin token: {shown}  (Ctrl-C stops everything)", flush=True)
        while not stopping:
            time.sleep(0.2)
    finally:
        codes = cluster.stop()
        print("stopped: " + ", ".join(f"{k}={v}" for k, v in codes.items()), flush=True)
        if args.fresh:
            drop_database(url)


if __name__ == "__main__":
    main()
