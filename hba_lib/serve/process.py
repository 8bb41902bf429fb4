"""A model server in a child process: ``python -m hba_lib.serve`` started, waited for, stopped.

For a notebook, a benchmark or a test that needs a served model on this machine::

    with ServerProcess("c3d", key="...", budget=10_000) as srv:
        oracle = RemoteOracle(srv.url, "...")
        ...

It binds 127.0.0.1 at any free port (``--port 0``), reads the line that says where it
listens, and is ready once that address answers HTTP. The key goes through the environment
(``$HBA_SERVE_KEY``), never the command line, where any user of the machine could read it. The
child imports the same ``hba_lib`` as the parent. Standard library only.
"""

from __future__ import annotations

import http.client
import os
import queue
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import hba_lib
from hba_lib.oracle.remote import KEY_ENV

SOURCE_ROOT = Path(hba_lib.__file__).resolve().parents[1]
"""The folder that holds this ``hba_lib``: put first on the child's ``PYTHONPATH``."""


def answers_http(url: str, timeout: float = 5.0) -> bool:
    """Whether anything at ``url`` (``http://HOST:PORT`` or ``https://``) answers ``GET /status``
    with HTTP (any status: without a key the server says 401, and that is an answer). Over TLS
    the certificate is not checked: this asks only whether the child is up, and sends no key."""
    tls = url.startswith("https://")
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    if tls:
        unchecked = ssl.create_default_context()
        unchecked.check_hostname, unchecked.verify_mode = False, ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, int(port), timeout=timeout, context=unchecked
        )
    else:
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", "/status")
        conn.getresponse().read()
    except OSError:
        return False
    finally:
        conn.close()
    return True


class ServerProcess:
    """``python -m hba_lib.serve --model MODEL ...`` in a child process on 127.0.0.1.

    ``key``: the API key (through ``$HBA_SERVE_KEY``; ``None``: the caller's environment or
    ``args`` say it, e.g. ``--keys-file``). ``budget``, ``threads``, ``audit_log``: the
    server's options of those names; ``args``: any other options. ``echo``: print the server's
    lines until it is ready (a benchmark's user sees a slow model load). Raises
    ``RuntimeError`` with everything the server printed when it does not start within
    ``startup_timeout`` seconds. ``output``: its lines so far; ``url``, ``port``: where it listens
    (``https://`` when ``args`` give ``--ssl-certfile`` and ``--ssl-keyfile``).
    """

    def __init__(
        self,
        model: str = "c3d",
        *args: str,
        key: str | None = None,
        budget: int | None = None,
        threads: int | None = 1,
        audit_log: str | Path | None = None,
        startup_timeout: float = 300.0,
        echo: bool = False,
    ) -> None:
        cmd = [sys.executable, "-m", "hba_lib.serve", "--model", model,
               "--host", "127.0.0.1", "--port", "0"]  # fmt: skip
        for option, value in (("--budget", budget), ("--threads", threads),
                              ("--audit-log", audit_log)):  # fmt: skip
            if value is not None:
                cmd += [option, str(value)]
        cmd += list(args)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(SOURCE_ROOT), os.environ.get("PYTHONPATH", "")) if p
        )
        if key is not None:
            env[KEY_ENV] = key
        self.model, self.echo = model, echo
        self.output: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        self._ready = False
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()
        self.url = self._wait_listening(startup_timeout)
        self.port = int(self.url.rsplit(":", 1)[1])

    def _pump(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.output.append(line)
            self._lines.put(line)
            if self.echo and not self._ready:
                print("  server:", line.rstrip(), flush=True)

    def _wait_listening(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break  # it died
                continue
            if "listening on " in line:
                url = line.split("listening on ", 1)[1].strip()
                while time.monotonic() < deadline and self.proc.poll() is None:
                    if answers_http(url):  # bound; now wait for uvicorn to answer
                        self._ready = True
                        return url
                    time.sleep(0.05)
                break
        self.stop()
        self._reader.join(timeout=5)  # the child is gone: its output ends, take the last lines
        raise RuntimeError(
            f"the model server for {self.model!r} did not start within {timeout:.0f} s:\n"
            + "".join(self.output)
        )

    def stop(self, timeout: float = 15.0) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after ``timeout`` seconds); idempotent."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
