"""``autoquant ui``: the MLflow UI on the local tracking store, on 127.0.0.1 and a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

from autoquant.tracking.tracker import check_reachable, resolve_tracking_uri


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 90.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except OSError:
            time.sleep(0.5)
    return False


def start(tracking_uri: str | None = None, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """Start the UI in a child process; returns it and its address once it answers."""
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri)
    port = port or free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    address = f"http://127.0.0.1:{port}"
    if not wait_until_up(address, process):
        process.terminate()
        error = process.stderr.read()[-2000:] if process.stderr else ""
        raise RuntimeError(f"The MLflow UI did not start on {address}:\n{error}")
    return process, address


def serve(tracking_uri: str | None = None, port: int | None = None) -> int:
    process, address = start(tracking_uri, port)
    print(
        f"MLflow UI for {resolve_tracking_uri(tracking_uri)}: {address}  (Ctrl-C to stop)",
        flush=True,
    )
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        process.wait(timeout=10)
        return 0
