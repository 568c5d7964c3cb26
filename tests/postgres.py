"""A throwaway PostgreSQL server on 127.0.0.1, in a temporary folder, for the tests.

Uses Debian's postgresql binaries (installed by .ci/run); the server runs as the ``postgres``
user (PostgreSQL refuses to run as root) and is stopped and removed afterwards.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator


def binaries() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(found[-1]) if found else None


def _as_postgres(*command: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)


@contextlib.contextmanager
def local_postgres() -> Iterator[str]:
    """Yield the SQLAlchemy URL of a fresh server; stop it and delete its data on exit."""
    bin_dir = binaries()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed: apt-get install -y postgresql")
    folder = tempfile.mkdtemp(prefix="autoquant-pg-")
    data, sockets = os.path.join(folder, "data"), os.path.join(folder, "run")
    os.makedirs(sockets)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(sockets, "postgres")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    run = {"check": True, "capture_output": True, "timeout": 120}
    subprocess.run(
        _as_postgres(f"{bin_dir}/initdb", "-D", data, "-U", "postgres", "--auth=trust"), **run
    )
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c max_connections=100"
    subprocess.run(
        _as_postgres(
            f"{bin_dir}/pg_ctl",
            "-D",
            data,
            "-o",
            options,
            "-w",
            "start",
            "-l",
            os.path.join(folder, "log"),
        ),
        **run,
    )
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres(f"{bin_dir}/pg_ctl", "-D", data, "-m", "fast", "stop"),
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(folder, ignore_errors=True)
