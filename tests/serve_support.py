"""A live `wasmhost serve` in a child process on 127.0.0.1, for the service's tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    """A server process: its base URL, an admin token's secret, and its registry's home."""

    process: subprocess.Popen
    url: str
    host_port: str
    admin: str
    home: Path
    log: Path

    def headers(self, token: str | None = None) -> dict[str, str]:
        """Fresh headers for a request (tritonclient adds to the dict it is given)."""
        return {"Authorization": f"Bearer {token or self.admin}"}

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers(token), timeout=120)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def wasmhost(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WASMHOST_HOME": str(home)}
    env.pop("WASMHOST_REGISTRY", None)
    return subprocess.run(
        [sys.executable, "-m", "wasmhost.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )


def start_server(home: Path, *extra: str, auth: bool = True) -> LiveServer:
    """Starts `wasmhost serve` on a free loopback port with a registry at `home`, with an
    admin token made for it, and waits (bounded) until it answers."""
    home.mkdir(parents=True, exist_ok=True)
    admin = wasmhost(
        home, "token", "create", f"admin-{os.getpid()}-{time.monotonic_ns()}", "--role", "admin"
    ).stdout.split()[-1]
    port = free_port()
    log = home / f"serve-{port}.log"
    env = {**os.environ, "WASMHOST_HOME": str(home)}
    env.pop("WASMHOST_REGISTRY", None)
    args = [sys.executable, "-m", "wasmhost.cli", "serve", "--port", str(port), *extra]
    if not auth:
        args.append("--no-auth")
    with log.open("wb") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}): {log.read_text()}")
        try:
            if httpx.get(f"{url}/v2/health/live", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the server did not start in 60 s: {log.read_text()}")
        time.sleep(0.1)
    return LiveServer(process, url, f"127.0.0.1:{port}", admin, home, log)
