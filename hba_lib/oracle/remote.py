"""The oracle of a model served over HTTP (``python -m hba_lib.serve``): :class:`RemoteOracle`.

A :class:`RemoteOracle` *is* an :class:`~hba_lib.oracle.Oracle` whose model evaluation is one
HTTP request per forward pass, so ``fork``, ``query_jointly``, every attack's ``run`` and
``run_many``, the ART peers and the sweep runner work against a served model unchanged. The
server owns the model, the budget and the count; the client mirrors them:

- its ``budget`` is the server's (read from ``GET /status`` when it is built), and ``used`` /
  ``remaining`` are the server's count as of its last answer, so a request the server would
  refuse is refused here first, with the same :class:`~hba_lib.oracle.BudgetExhausted`; a
  request the server refuses anyway (a client that skips its own check) raises it too;
- every answer carries the server's count, which must be the count before plus the clips sent:
  anything else (another client spending the same budget, a restarted server) raises
  :class:`CountMismatch` rather than let the two counts drift apart;
- a dropped connection, a timeout or a 503 is retried with the same request id
  (``X-Request-Id``); the server answers a repeated id from its cache without counting it
  again. Every wait is bounded: ``connect_timeout`` to connect, ``timeout + per_clip_timeout *
  B`` for a request of ``B`` clips to be sent and answered, so a frozen server is given up within
  :meth:`RemoteOracle.max_wait` seconds. When no answer comes after the retries,
  :class:`ServerUnavailable` (an :class:`~hba_lib.oracle.OracleUnavailable`, a
  :class:`~hba_lib.oracle.BudgetExhausted`) is raised: attacks end as at the budget, keeping
  the best adversarial video they had (``stop_reason == "oracle_unavailable"``);
- over ``https://`` the server's certificate is checked against the system's CAs, or
  ``cafile`` (a server's self-signed certificate).

The wire format (:func:`encode_clips`, the ``*_HEADER`` names) is defined here, beside the
client, and the server (``hba_lib.serve``) imports it: a body is the clips' raw little-endian
bytes, C order, ``dtype`` and shape ``B,C,T,H,W`` in headers. ``float32`` (the default) sends
exactly the tensor the attack built, so an attack over HTTP gives the in-process result bit for
bit; ``float16`` and ``uint8`` send half or a quarter of the bytes but quantise every query (the
model sees a rounded video, so the attack's path changes and its "bit for bit the tensor the
oracle evaluated" holds for the rounded tensor only). Standard library only: HTTP/1.1 on one
keep-alive socket (``TCP_NODELAY``; :class:`_Connection`), with ``http.client``'s errors.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import select
import socket
import ssl
import threading
import time
import urllib.parse
import uuid
from typing import Any

import numpy as np
import torch

from hba_lib.oracle.core import (
    Answer,
    BudgetExhausted,
    NonFiniteOutputError,
    Oracle,
    OracleUnavailable,
)

KEY_HEADER = "X-API-Key"
"""The header that carries the API key."""
REQUEST_ID_HEADER = "X-Request-Id"
"""A client-chosen id (1-128 of ``A-Z a-z 0-9 - _ .``); a repeated id is answered from the cache."""
DTYPE_HEADER = "X-Clip-Dtype"
"""``uint8`` (0-255), ``float16`` or ``float32`` (both in [0, 1])."""
SHAPE_HEADER = "X-Clip-Shape"
"""The batch's shape ``B,C,T,H,W``, comma-separated."""
CONTENT_TYPE = "application/octet-stream"
DTYPES = {"uint8": np.dtype("<u1"), "float16": np.dtype("<f2"), "float32": np.dtype("<f4")}
"""The body's element types on the wire (little-endian)."""
KEY_ENV = "HBA_SERVE_KEY"
"""The environment variable :class:`RemoteOracle` (and the server) read the key from."""


class ServerError(RuntimeError):
    """The server answered with an error no retry can fix (a wrong key, a request it refused as
    malformed, an internal error); ``status`` is the HTTP status, the message the server's."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class CountMismatch(RuntimeError):
    """The server's count is not the client's: someone else spends this server's budget, or
    the server restarted. The client refuses to go on with counts it cannot vouch for."""


class ServerUnavailable(OracleUnavailable):
    """No answer from the server after every retry (it is down, unreachable or killed)."""


def encode_clips(videos: torch.Tensor, dtype: str = "float32") -> memoryview:
    """The wire body of ``videos [B, C, T, H, W]`` in [0, 1]: raw little-endian ``dtype``
    values, C order (``uint8``: rounded ``255 * x``)."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown wire dtype {dtype!r}; one of {sorted(DTYPES)}")
    x = videos.detach().cpu()
    if dtype == "uint8":
        x = x.float().mul(255.0).round_().clamp_(0, 255)
    arr = np.ascontiguousarray(x.numpy(), dtype=DTYPES[dtype])
    return memoryview(arr).cast("B")


class _Connection:
    """One keep-alive HTTP/1.1 connection on a socket (TLS when ``tls`` is given), as lean as
    the model server's exchanges allow: a request with a ``Content-Length`` body goes out as its
    head and its body, unbuffered; an answer is read to its ``Content-Length`` (or through its
    chunks, or to the connection's end). Errors are ``http.client``'s (``RemoteDisconnected``,
    ``IncompleteRead``, ``BadStatusLine``) or ``OSError`` s; every socket operation waits at most
    the socket's timeout."""

    MAX_HEAD = 65536

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = bytearray()

    @classmethod
    def open(cls, host: str, port: int, timeout: float, tls: ssl.SSLContext | None) -> _Connection:
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no wait for an ACK
            if tls is not None:
                sock = tls.wrap_socket(sock, server_hostname=host)  # handshake within timeout
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    def stale(self) -> bool:
        """Whether this idle connection is no use any more: the server closed it (its keep-alive
        ran out) or sent what nobody asked for. A TLS record that holds no data (a session
        ticket) leaves it in use."""
        if self._buf:
            return True
        try:
            if not select.select([self.sock], [], [], 0)[0]:
                return False
            self.sock.setblocking(False)  # the caller sets the timeout again
            self.sock.recv(1)
        except (ssl.SSLWantReadError, BlockingIOError):
            return False
        except (OSError, ValueError):
            pass
        return True

    def close(self) -> None:
        self.sock.close()

    def exchange(self, head: bytes, body: Any) -> tuple[int, bytes, bool]:
        """Send ``head`` and ``body``; ``(status, answer body, keep the connection open)``."""
        if body is not None and len(body) <= 65536:
            self.sock.sendall(head + bytes(body))
        else:
            self.sock.sendall(head)
            if body is not None:
                self.sock.sendall(body)
        end = self._fill_until(b"\r\n\r\n")
        lines = bytes(self._buf[:end]).decode("iso-8859-1").split("\r\n")
        del self._buf[: end + 4]
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/") or not code.isdigit():
            raise http.client.BadStatusLine(lines[0])
        fields: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        keep = version == "HTTP/1.1" and fields.get("connection", "").lower() != "close"
        if "chunked" in fields.get("transfer-encoding", "").lower():
            data = self._chunked()
        elif "content-length" in fields:
            data = self._exactly(int(fields["content-length"]))
        else:
            data, keep = self._to_end(), False
        return int(code), data, keep

    def _recv(self) -> bool:
        more = self.sock.recv(262144)
        self._buf += more
        return bool(more)

    def _fill_until(self, mark: bytes) -> int:
        start = 0
        while (end := self._buf.find(mark, start)) < 0:
            if len(self._buf) > self.MAX_HEAD:
                raise http.client.LineTooLong("answer head")
            start = max(0, len(self._buf) - len(mark) + 1)
            if not self._recv():
                if self._buf:
                    raise http.client.IncompleteRead(bytes(self._buf))
                raise http.client.RemoteDisconnected("the server closed the connection unanswered")
        return end

    def _exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            if not self._recv():
                raise http.client.IncompleteRead(bytes(self._buf), n - len(self._buf))
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def _chunked(self) -> bytes:
        out = bytearray()
        while True:
            end = self._fill_until(b"\r\n")
            size = int(bytes(self._buf[:end]).split(b";")[0], 16)
            del self._buf[: end + 2]
            if size == 0:
                while (end := self._fill_until(b"\r\n")) > 0:  # trailers, up to an empty line
                    del self._buf[: end + 2]
                del self._buf[:2]
                return bytes(out)
            out += self._exactly(size + 2)[:size]

    def _to_end(self) -> bytes:
        while self._recv():
            pass
        data = bytes(self._buf)
        self._buf.clear()
        return data


class _Client:
    """One keep-alive HTTP(S) connection to the server, with bounded waits and retries."""

    def __init__(
        self,
        url: str,
        key: str,
        *,
        cafile: str | os.PathLike | None,
        connect_timeout: float,
        timeout: float,
        per_clip_timeout: float,
        retries: int,
        backoff: float,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected a server URL like http://127.0.0.1:8000, got {url!r}")
        if cafile is not None and parts.scheme != "https":
            raise ValueError(f"cafile= is for an https:// server, got {url!r}")
        if min(connect_timeout, timeout) <= 0 or per_clip_timeout < 0 or retries < 0:
            raise ValueError("timeouts must be > 0 (per_clip_timeout >= 0), retries >= 0")
        if not key.isascii() or not key.isprintable() or key != key.strip():
            raise ValueError("an API key is printable ASCII, without spaces at either end")
        self.url = url.rstrip("/")
        self._tls = ssl.create_default_context(cafile=cafile) if parts.scheme == "https" else None
        self._host = parts.hostname
        self._port = parts.port or (443 if self._tls is not None else 80)
        self._prefix = parts.path.rstrip("/")
        netloc = f"[{self._host}]" if ":" in self._host else self._host
        if parts.port is not None:
            netloc += f":{parts.port}"
        self._fixed = f"Host: {netloc}\r\n{KEY_HEADER}: {key}\r\n"
        self.connect_timeout, self.timeout = connect_timeout, timeout
        self.per_clip_timeout, self.retries, self.backoff = per_clip_timeout, retries, backoff
        self._conn: _Connection | None = None
        self._lock = threading.Lock()

    def wait(self, clips: int) -> float:
        """Seconds one attempt waits for a request of ``clips`` to be sent, and for its answer."""
        return self.timeout + self.per_clip_timeout * clips

    def max_wait(self, clips: int) -> float:
        """The longest a request of ``clips`` can take before :class:`ServerUnavailable`: every
        attempt's connection (TLS handshake included) and its two waits, and the backoffs."""
        attempts = self.retries + 1
        pauses = sum(self.backoff * 2**i for i in range(self.retries))
        return attempts * (2 * self.connect_timeout + 2 * self.wait(clips)) + pauses

    def _connection(self, clips: int) -> _Connection:
        if self._conn is not None and self._conn.stale():
            self._drop()  # closed by the server while idle (its keep-alive ran out)
        if self._conn is None:
            # within connect_timeout (and the TLS handshake with it)
            self._conn = _Connection.open(self._host, self._port, self.connect_timeout, self._tls)
        self._conn.sock.settimeout(self.wait(clips))
        return self._conn

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        clips: int = 0,
    ) -> tuple[int, dict[str, Any]]:
        """``(status, JSON answer)``; a dropped connection, a timeout or a 503 is retried (same
        headers, so the same request id) up to ``retries`` times, then :class:`ServerUnavailable`
        (within :meth:`max_wait` of ``clips``)."""
        lines = [f"{method} {self._prefix}{path} HTTP/1.1\r\n", self._fixed]
        lines += [f"{name}: {value}\r\n" for name, value in (headers or {}).items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}\r\n")
        head = "".join(lines).encode("latin-1") + b"\r\n"
        last: BaseException | str = ""
        timeouts = 0
        with self._lock:
            for attempt in range(self.retries + 1):
                if attempt:
                    time.sleep(self.backoff * 2 ** (attempt - 1))
                try:
                    conn = self._connection(clips)
                    status, data, keep = conn.exchange(head, body)
                    if not keep:
                        self._drop()
                except ssl.SSLCertVerificationError as exc:  # no retry mends a certificate
                    self._drop()
                    raise ServerError(
                        f"the TLS certificate of {self.url} is not trusted ({exc.verify_message}):"
                        " give RemoteOracle(..., cafile=) the server's certificate or its CA", 0
                    ) from None  # fmt: skip
                except (OSError, http.client.HTTPException) as exc:  # refused, reset, timeout
                    self._drop()
                    last = exc
                    timeouts += isinstance(exc, (socket.timeout, TimeoutError))
                    continue
                if status == 503:  # busy or shutting down: try again
                    last = f"HTTP 503: {data[:200]!r}"
                    continue
                try:
                    answer = json.loads(data) if data else {}
                except ValueError:
                    answer = {"detail": data[:200].decode("utf-8", "replace")}
                return status, answer if isinstance(answer, dict) else {"detail": answer}
        why = f"{type(last).__name__}: {last}" if isinstance(last, BaseException) else last
        frozen = (f"; {timeouts} attempt(s) timed out after {self.wait(clips):g} s: the server is "
                  "frozen or overloaded") if timeouts else ""  # fmt: skip
        raise ServerUnavailable(
            f"no answer from the model server at {self.url} after {self.retries + 1} "
            f"attempt(s) ({why}){frozen}"
        )


def _raise_for(status: int, answer: dict[str, Any], url: str) -> None:
    detail = answer.get("detail", "")
    if status == 429:
        raise BudgetExhausted(f"the server refused the request: {detail}")
    if status == 401:
        raise ServerError(f"the server at {url} refused the API key: {detail}", status)
    raise ServerError(f"the server at {url} answered HTTP {status}: {detail}", status)


class RemoteOracle(Oracle):
    """The :class:`~hba_lib.oracle.Oracle` of a model served by ``python -m hba_lib.serve``.

    ``url``: the server, e.g. ``http://127.0.0.1:8000`` or ``https://...``; ``key``: its API key
    (default: the environment variable ``HBA_SERVE_KEY``); ``cafile``: the certificate (or CA)
    an ``https://`` server is checked against (default: the system's). ``dtype``: the wire
    format of the clips (``float32``: exact; ``float16`` / ``uint8``: smaller bodies, quantised
    queries; module docstring). Waits: ``connect_timeout`` seconds to connect, ``timeout +
    per_clip_timeout * B`` for a request of ``B`` clips to be sent and then answered;
    ``retries`` / ``backoff``: a dropped connection, a timeout or a 503 is tried again that many
    times, after ``backoff`` seconds, doubling. :meth:`max_wait` is the bound that makes.

    ``budget`` is the server's; ``used`` and ``remaining`` are the server's count as of its last
    answer (queries spent before this client connected included); ``counts`` by phase are this
    client's (forks included). The client assumes it is the only one spending the server's
    budget: a count it did not expect raises :class:`CountMismatch`. Raises
    :class:`ServerUnavailable` if the server does not answer, :class:`ServerError` if it
    refuses the key.
    """

    __slots__ = ("_client", "_server", "_wire", "_server_used")

    def __init__(
        self,
        url: str,
        key: str | None = None,
        *,
        dtype: str = "float32",
        cafile: str | os.PathLike | None = None,
        timeout: float = 30.0,
        per_clip_timeout: float = 0.5,
        connect_timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.2,
    ) -> None:
        key = key if key is not None else os.environ.get(KEY_ENV)
        if not key:
            raise ValueError(f"give the server's API key (key=... or ${KEY_ENV})")
        if dtype not in DTYPES:
            raise ValueError(f"unknown wire dtype {dtype!r}; one of {sorted(DTYPES)}")
        client = _Client(
            url, key, cafile=cafile, connect_timeout=connect_timeout, timeout=timeout,
            per_clip_timeout=per_clip_timeout, retries=retries, backoff=backoff,
        )  # fmt: skip
        status, info = client.request("GET", "/status")
        if status != 200:
            _raise_for(status, info, client.url)
        self._client, self._wire, self._server = client, dtype, info
        self._server_used = int(info["used"])
        self._evaluate = self._make_remote_evaluator()
        self._device = torch.device("cpu")
        self._frames = int(info["clip_shape"][1])
        self._parent = None
        self._init_counters(info["budget"])

    @property
    def url(self) -> str:
        """The server's URL."""
        return self._client.url

    @property
    def server(self) -> dict[str, Any]:
        """What the server said about itself when this oracle connected (``GET /status``)."""
        return dict(self._server)

    @property
    def used(self) -> int:
        """The server's count of queries, as of its last answer."""
        return self._server_used

    def status(self) -> dict[str, Any]:
        """The server's ``GET /status`` now (model, budget, used, remaining, clip shape)."""
        code, info = self._client.request("GET", "/status")
        if code != 200:
            _raise_for(code, info, self._client.url)
        return info

    def max_wait(self, clips: int = 1) -> float:
        """Seconds a request of ``clips`` may take at most before :class:`ServerUnavailable`:
        ``(retries + 1) * (2 * connect_timeout + 2 * (timeout + per_clip_timeout * clips))``
        plus the backoffs (a frozen server typically ends it after ``(retries + 1) * (timeout +
        per_clip_timeout * clips)``)."""
        return self._client.max_wait(clips)

    def close(self) -> None:
        """Close the connection (the next query opens a new one)."""
        self._client.close()

    def _make_remote_evaluator(self):
        client, wire = self._client, self._wire
        max_batch = int(self._server["max_batch"])
        probs_served = bool(self._server["probs"])

        def evaluate(videos: torch.Tensor, first_query: int, phase: str, strict: bool = True):
            labels, probs, bads = [], [], []
            for start in range(0, videos.shape[0], max_batch):  # the server's limit per request
                part = videos[start : start + max_batch]
                before = self._server_used
                code, answer = client.request(
                    "POST",
                    "/classify",
                    body=encode_clips(part, wire),
                    headers={
                        "Content-Type": CONTENT_TYPE,
                        DTYPE_HEADER: wire,
                        SHAPE_HEADER: ",".join(str(s) for s in part.shape),
                        REQUEST_ID_HEADER: uuid.uuid4().hex,
                    },
                    clips=part.shape[0],
                )
                if code != 200:
                    _raise_for(code, answer, client.url)
                self._server_used = int(answer["used"])
                if self._server_used != before + part.shape[0]:
                    raise CountMismatch(
                        f"the server at {client.url} counts {self._server_used} queries after a "
                        f"request for {part.shape[0]}, this client expected "
                        f"{before + part.shape[0]}: another client spends its budget, or it "
                        "restarted; use one RemoteOracle per served budget"
                    )
                labels.append(torch.tensor(answer["labels"], dtype=torch.int64))
                p = answer["probs"] if probs_served else [math.nan] * part.shape[0]
                probs.append(torch.tensor(p, dtype=torch.float32))
                bad = torch.zeros(part.shape[0], dtype=torch.bool)
                bad[answer.get("nonfinite", [])] = True
                bads.append(bad)
            ans = Answer(torch.cat(labels), torch.cat(probs))
            bad = torch.cat(bads)
            if not strict:
                return ans, bad
            if bool(bad.any()):
                i = int(bad.nonzero()[0, 0])
                raise NonFiniteOutputError(
                    f"model returned NaN/Inf logits for query #{first_query + i + 1} "
                    f"(batch item {i}, phase {phase!r})",
                    item=i,
                )
            return ans

        return evaluate
