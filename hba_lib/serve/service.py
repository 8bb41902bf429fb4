"""What the model server does, apart from HTTP: keys, the checks on a request, the count, the
deduplication of retried requests and the audit log. :mod:`hba_lib.serve.app` is the thin
FastAPI shell around it; keeping the rules here keeps them in one place, free of the web stack.

The model sits behind an in-process :class:`~hba_lib.oracle.Oracle` with the server's budget, so
the server counts and refuses exactly as the local oracle does, and answers exactly what it
would (the same clamp, chunks and arithmetic): an attack over HTTP with ``float32`` bodies gives
the in-process result bit for bit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import sys
import threading
import time
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from hba_lib.oracle import BudgetExhausted, Oracle
from hba_lib.oracle.remote import CONTENT_TYPE, DTYPE_HEADER, DTYPES, SHAPE_HEADER

MIN_KEY_LENGTH = 16
"""Keys shorter than this are refused at start: a key is only as good as it is hard to guess."""
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_TORCH = {"uint8": torch.uint8, "float16": torch.float16, "float32": torch.float32}
"""The wire dtypes as torch reads them: in this machine's byte order, which must be the wire's."""
if sys.byteorder != "little":
    raise ImportError("the wire format is little-endian; this server reads bodies natively")


class Refusal(Exception):
    """A request the server refuses: HTTP ``status`` (4xx) and a message that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Reply(NamedTuple):
    """What :meth:`ModelService.classify` answers: the HTTP ``status``, the JSON ``answer``, the
    clips ``counted`` and the model's time in ms (``model_ms``, for the audit log)."""

    status: int
    answer: dict[str, Any]
    counted: int = 0
    model_ms: float | None = None


@dataclass(frozen=True)
class ClipRequest:
    """A request's checked headers: ``request_id`` (``replayable`` when the client chose it),
    wire ``dtype``, ``shape`` ``(B, C, T, H, W)`` and the body's length in bytes."""

    request_id: str
    replayable: bool
    dtype: str
    shape: tuple[int, int, int, int, int]
    nbytes: int


def key_id_of(key: str) -> str:
    """The name the audit log gives a key set by ``--key`` / ``$HBA_SERVE_KEY``: a short hash,
    never the key itself."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


def read_keys_file(path: str | Path) -> dict[str, str]:
    """``{key id: key}`` from a keys file: one ``<id> <key>`` per line, ``#`` comments."""
    keys: dict[str, str] = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{path}:{n}: expected '<id> <key>', got {len(parts)} field(s)")
        if parts[0] in keys:
            raise ValueError(f"{path}:{n}: key id {parts[0]!r} given twice")
        keys[parts[0]] = parts[1]
    if not keys:
        raise ValueError(f"{path} holds no key")
    return keys


class AuditLog:
    """JSON lines, one per event, flushed at once so an auditor can follow the file while the
    server runs. Every line has ``time`` (UTC, ISO 8601) and ``event``; never a key."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, event: str, **fields: Any) -> None:
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e3):03d}Z"
        line = json.dumps({"time": stamp, "event": event, **fields}, separators=(",", ":"))
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


class ModelService:
    """The served model: ``budget`` clips in all (``None``: unlimited), answered for holders of
    ``keys`` (``{key id: key}``), clips of ``clip_shape`` ``(C, T, H, W)``, at most
    ``max_batch`` a request; ``probs``: answer the top-1 probability beside the label.
    ``dedup``: how many answers are kept for replay by request id."""

    def __init__(
        self,
        model: nn.Module,
        *,
        name: str,
        clip_shape: tuple[int, int, int, int],
        budget: int | None,
        keys: Mapping[str, str],
        audit: AuditLog,
        probs: bool = True,
        max_batch: int = 256,
        dedup: int = 1024,
        device: str | torch.device | None = None,
    ) -> None:
        if not keys:
            raise ValueError("the server needs at least one API key")
        short = [kid for kid, k in keys.items() if len(k) < MIN_KEY_LENGTH]
        if short:
            raise ValueError(
                f"keys shorter than {MIN_KEY_LENGTH} characters: {short} (make one with "
                "python -c 'import secrets; print(secrets.token_urlsafe(24))')"
            )
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.name, self.clip_shape, self.probs = name, tuple(clip_shape), probs
        self.max_batch, self.audit = max_batch, audit
        self._keys = [(kid, k.encode()) for kid, k in keys.items()]
        self._oracle = Oracle(model, budget, num_frames=clip_shape[1], device=device)
        self._lock = threading.Lock()
        self._answers: OrderedDict[tuple[str, str], tuple[tuple, dict[str, Any]]] = OrderedDict()
        self._dedup = dedup
        self.requests = 0
        audit.write(
            "start", model=name, budget=budget, clip_shape=list(clip_shape), probs=probs,
            max_batch=max_batch, dtypes=sorted(DTYPES), keys=[kid for kid, _ in self._keys],
        )  # fmt: skip

    # -- keys -----------------------------------------------------------------------------------
    def authenticate(self, presented: str | None) -> str | None:
        """The id of the key ``presented``, or ``None``. Compares with every key in constant
        time (``hmac.compare_digest``), so timing does not tell how much of a key was right."""
        if not presented:
            return None
        given = presented.encode()
        found = None
        for kid, key in self._keys:
            if hmac.compare_digest(given, key) and found is None:
                found = kid
        return found

    # -- the count ------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """What ``GET /status`` answers: the model's name, the budget and the count, the clips
        it takes."""
        with self._lock:
            used, budget = self._oracle.used, self._oracle.budget
        return {
            "model": self.name,
            "budget": budget,
            "used": used,
            "remaining": None if budget is None else budget - used,
            "clip_shape": list(self.clip_shape),
            "dtypes": sorted(DTYPES),
            "max_batch": self.max_batch,
            "probs": self.probs,
            "requests": self.requests,
        }

    # -- checks ---------------------------------------------------------------------------------
    def parse_headers(self, headers: Mapping[str, str]) -> ClipRequest:
        """Check a request's headers against what the model takes, before reading its body;
        raise :class:`Refusal` (4xx) naming what is wrong."""
        ctype = headers.get("content-type", "")
        if ctype.split(";")[0].strip().lower() != CONTENT_TYPE:
            raise Refusal(415, f"Content-Type must be {CONTENT_TYPE}, got {ctype!r}")
        dtype = headers.get(DTYPE_HEADER.lower())
        if dtype is None:
            raise Refusal(400, f"missing header {DTYPE_HEADER} (one of {sorted(DTYPES)})")
        if dtype not in DTYPES:
            raise Refusal(415, f"{DTYPE_HEADER} {dtype!r} is not one of {sorted(DTYPES)}")
        raw = headers.get(SHAPE_HEADER.lower())
        if raw is None:
            raise Refusal(400, f"missing header {SHAPE_HEADER} (B,C,T,H,W)")
        try:
            shape = tuple(int(s) for s in raw.split(","))
        except ValueError:
            raise Refusal(400, f"{SHAPE_HEADER} {raw[:80]!r} is not B,C,T,H,W integers") from None
        if len(shape) != 5:
            raise Refusal(400, f"{SHAPE_HEADER} has {len(shape)} dimensions, expected B,C,T,H,W")
        if min(shape) < 0:
            raise Refusal(400, f"{SHAPE_HEADER} {shape} has a negative dimension")
        b, clip = shape[0], shape[1:]
        if b == 0:
            raise Refusal(422, "empty batch: B is 0")
        if b > self.max_batch:
            raise Refusal(413, f"batch of {b} clips over this server's limit of {self.max_batch}")
        if clip != self.clip_shape:
            what = ("channels C", "frames T", "height H", "width W")
            wrong = [f"{w} {g} (expected {e})" for w, g, e in zip(what, clip, self.clip_shape)
                     if g != e]  # fmt: skip
            raise Refusal(
                422,
                f"clips of shape {clip}, this model takes {self.clip_shape}: " + ", ".join(wrong),
            )
        nbytes = math.prod(shape) * DTYPES[dtype].itemsize
        declared = headers.get("content-length")
        if declared is not None and declared.strip() != str(nbytes):
            raise Refusal(
                400, f"Content-Length {declared[:20]!r}, but {b} clips {clip} of {dtype} are "
                f"{nbytes} bytes"
            )  # fmt: skip
        rid = headers.get("x-request-id")
        if rid is not None and not _REQUEST_ID.match(rid):
            raise Refusal(400, "X-Request-Id must be 1-128 of A-Z a-z 0-9 . _ -")
        return ClipRequest(rid or uuid.uuid4().hex, rid is not None, dtype, shape, nbytes)  # type: ignore[arg-type]

    @staticmethod
    def decode(req: ClipRequest, body: bytearray) -> torch.Tensor:
        """The body as float32 clips in [0, 1] (``uint8``: / 255); NaN or Inf refused."""
        x = torch.frombuffer(body, dtype=_TORCH[req.dtype]).view(req.shape)
        if req.dtype == "uint8":
            return x.float().div_(255.0)
        x = x.float()
        # a sum is NaN or Inf when any value is, and 25x faster than isfinite().all(); a finite
        # body whose sum overflows gets the exact count, which finds nothing
        if not bool(torch.isfinite(x.sum())):
            bad = int((~torch.isfinite(x)).sum())
            if bad:
                raise Refusal(422, f"{bad} value(s) of the clips are NaN or Inf")
        return x

    # -- answers --------------------------------------------------------------------------------
    def classify(self, key_id: str, req: ClipRequest, body: bytearray) -> Reply:
        """Answer one checked request.

        Under one lock: a request id already answered for this key is answered again from the
        cache (counted once; a different body under the same id is refused, 409); a request
        that does not fit the budget is refused whole (429), nothing evaluated; otherwise the
        model answers every clip and they are counted."""
        videos = self.decode(req, body)
        fingerprint = (req.dtype, req.shape, zlib.crc32(body[::997]))  # a cheap fingerprint
        with self._lock:
            slot = (key_id, req.request_id)
            if req.replayable and slot in self._answers:
                seen, answer = self._answers[slot]
                if seen != fingerprint:
                    raise Refusal(409, f"request id {req.request_id} was used for another body")
                return Reply(200, {**answer, "replayed": True})
            t0 = time.perf_counter()
            try:
                ans, bad = self._oracle.answer_all(videos)
            except BudgetExhausted as exc:
                return Reply(429, self._counts({"detail": str(exc)}))
            model_ms = (time.perf_counter() - t0) * 1e3
            self.requests += 1
            answer = self._counts({"request_id": req.request_id, "labels": ans.labels.tolist()})
            if self.probs:
                answer["probs"] = ans.probs.tolist()
            answer["nonfinite"] = bad.nonzero().flatten().tolist()
            if req.replayable:
                self._answers[slot] = (fingerprint, answer)
                while len(self._answers) > self._dedup:
                    self._answers.popitem(last=False)
        return Reply(200, answer, req.shape[0], round(model_ms, 2))

    def _counts(self, answer: dict[str, Any]) -> dict[str, Any]:
        used, budget = self._oracle.used, self._oracle.budget
        return {**answer, "used": used, "remaining": None if budget is None else budget - used}

    def used(self) -> int:
        """Clips counted so far."""
        with self._lock:
            return self._oracle.used
