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
oracle evaluated" holds for the rounded tensor only). Standard library only (``http.client``).
"""

from __future__ import annotations

import http.client
import json
import math
import os
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
        self.url = url.rstrip("/")
        self._tls = ssl.create_default_context(cafile=cafile) if parts.scheme == "https" else None
        self._host, self._port = parts.hostname, parts.port
        self._prefix = parts.path.rstrip("/")
        self._key = key
        self.connect_timeout, self.timeout = connect_timeout, timeout
        self.per_clip_timeout, self.retries, self.backoff = per_clip_timeout, retries, backoff
        self._conn: http.client.HTTPConnection | None = None
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

    def _connection(self, clips: int) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._tls is not None:
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self.connect_timeout, context=self._tls
                )
            else:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self.connect_timeout
                )
        if self._conn.sock is None:
            self._conn.connect()  # within connect_timeout (and the TLS handshake with it)
        self._conn.sock.settimeout(self.wait(clips))  # type: ignore[union-attr]
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
        headers = {KEY_HEADER: self._key, **(headers or {})}
        last: BaseException | str = ""
        timeouts = 0
        with self._lock:
            for attempt in range(self.retries + 1):
                if attempt:
                    time.sleep(self.backoff * 2 ** (attempt - 1))
                try:
                    conn = self._connection(clips)
                    conn.request(method, self._prefix + path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
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
                if resp.status == 503:  # busy or shutting down: try again
                    last = f"HTTP 503: {data[:200]!r}"
                    continue
                try:
                    answer = json.loads(data) if data else {}
                except ValueError:
                    answer = {"detail": data[:200].decode("utf-8", "replace")}
                return resp.status, answer if isinstance(answer, dict) else {"detail": answer}
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
