"""What the model server does, apart from HTTP: keys and their accounts, the checks on a
request, the count, the deduplication of retried requests and the audit log. :mod:`hba_lib.serve.app`
is the thin FastAPI shell around it; keeping the rules here keeps them in one place, free of the
web stack.

The model sits behind an in-process :class:`~hba_lib.oracle.Oracle`, so the server answers
exactly what it would (the same clamp, chunks and arithmetic): an attack over HTTP with
``float32`` bodies gives the in-process result bit for bit. The budgets are the server's own
:class:`Account` s, one per key (``--keys``) or one for all (``--key``, ``--keys-file``).

Locks: an account's lock is held only to check and move its count (and to write the
``reserved`` line that goes with it); the model runs under its own lock, in a worker thread; the
handlers on the event loop take neither (they read counts without a lock), so ``/status`` and a
refusal never wait for a batch.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import math
import os
import re
import secrets
import sys
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from hba_lib import paths
from hba_lib.oracle import Oracle
from hba_lib.oracle.remote import CONTENT_TYPE, DTYPE_HEADER, DTYPES, SHAPE_HEADER
from hba_lib.serve.audit import AuditLog

__all__ = ["AuditLog", "ModelService", "Refusal", "Reply", "ClipRequest", "Account"]

MIN_KEY_LENGTH = 16
"""Keys shorter than this are refused at start: a key is only as good as it is hard to guess."""
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_TORCH = {"uint8": torch.uint8, "float16": torch.float16, "float32": torch.float32}
"""The wire dtypes as torch reads them: in this machine's byte order, which must be the wire's."""
if sys.byteorder != "little":
    raise ImportError("the wire format is little-endian; this server reads bodies natively")


class Refusal(Exception):
    """A request the server refuses: HTTP ``status`` (4xx, 503) and a message that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class EvaluationFailed(Exception):
    """The model failed on a reserved request (``seq``): its ``clips`` were given back."""

    def __init__(self, seq: int, clips: int) -> None:
        super().__init__(f"the model failed on request #{seq}; its {clips} clip(s) not counted")
        self.seq, self.clips = seq, clips


class Reply(NamedTuple):
    """What :meth:`ModelService.classify` answers: the HTTP ``status``, the JSON ``answer``, the
    clips ``counted``, the model's time in ms (``model_ms``), the request's ``seq`` (its
    ``reserved`` line's) and ``outcome`` (``answered``, ``replayed``, ``refused``, ``failed``)."""

    status: int
    answer: dict[str, Any]
    counted: int = 0
    model_ms: float | None = None
    seq: int | None = None
    outcome: str = "refused"


@dataclass(frozen=True)
class ClipRequest:
    """A request's checked headers: ``request_id`` (``replayable`` when the client chose it),
    wire ``dtype``, ``shape`` ``(B, C, T, H, W)`` and the body's length in bytes."""

    request_id: str
    replayable: bool
    dtype: str
    shape: tuple[int, int, int, int, int]
    nbytes: int


@dataclass(eq=False)
class Account:
    """A budget (``None``: unlimited) and what was spent from it: ``used`` clips (reserved ones
    included), ``requests`` answered. Its ``lock`` guards both, briefly; reads take no lock."""

    budget: int | None
    used: int = 0
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def digest_of(key: str) -> str:
    """The SHA-256 of a key, hex: what a keys file and the server keep, never the key."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str:
    """The name the audit log gives a key set by ``--key`` / ``$HBA_SERVE_KEY``: a short hash,
    never the key itself."""
    return "key-" + digest_of(key)[:8]


def fingerprint(req: ClipRequest, body: bytes | bytearray | memoryview) -> tuple[str, tuple, str]:
    """What makes two requests the same: dtype, shape and the SHA-256 of the whole body (any
    byte that differs makes another fingerprint)."""
    return (req.dtype, req.shape, hashlib.sha256(body).hexdigest())


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


def read_keys_json(path: str | Path) -> dict[str, tuple[str, int | None]]:
    """``{key id: (SHA-256 hex of the key, budget or None)}`` from a ``--keys`` file: a JSON
    object ``{"<id>": {"sha256": "<64 hex>", "budget": <clips or null>}, ...}``."""
    try:
        data = json.loads(Path(path).read_text())
    except ValueError as exc:
        raise ValueError(f"{path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object {{key id: {{sha256, budget}}}}")
    out: dict[str, tuple[str, int | None]] = {}
    for kid, entry in data.items():
        if not _KEY_ID.match(kid):
            raise ValueError(f"{path}: key id {kid!r} is not 1-64 of A-Z a-z 0-9 . _ -")
        if not isinstance(entry, dict) or set(entry) != {"sha256", "budget"}:
            raise ValueError(f"{path}: key {kid!r} must be {{'sha256': ..., 'budget': ...}}")
        digest, budget = entry["sha256"], entry["budget"]
        if not isinstance(digest, str) or not _SHA256_HEX.match(digest):
            raise ValueError(f"{path}: key {kid!r}: sha256 must be 64 lowercase hex digits")
        if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool)
                                   or budget < 0):  # fmt: skip
            raise ValueError(f"{path}: key {kid!r}: budget must be a number of clips >= 0 or null")
        out[kid] = (digest, budget)
    if not out:
        raise ValueError(f"{path} holds no key")
    return out


def add_key(path: str | Path, key_id: str, budget: int | None) -> str:
    """Add ``key_id`` with ``budget`` to the ``--keys`` file at ``path`` (made if missing) and
    return its new key: the file keeps its SHA-256 only, so this is the one time it is seen."""
    path = Path(path)
    data = json.loads(path.read_text()) if path.exists() else {}
    if key_id in data:
        raise ValueError(f"{path} already has a key {key_id!r} (revoke it first)")
    if not _KEY_ID.match(key_id):
        raise ValueError(f"key id {key_id!r} is not 1-64 of A-Z a-z 0-9 . _ -")
    if budget is not None and budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    key = secrets.token_urlsafe(24)
    data[key_id] = {"sha256": digest_of(key), "budget": budget}
    _write_private(path, data)
    return key


def revoke_key(path: str | Path, key_id: str) -> None:
    """Remove ``key_id`` from the ``--keys`` file (the server forgets it at its next start)."""
    path = Path(path)
    data = json.loads(path.read_text())
    if key_id not in data:
        raise ValueError(f"{path} has no key {key_id!r}; it has {sorted(data)}")
    del data[key_id]
    _write_private(path, data)


def _write_private(path: Path, data: dict) -> None:
    with paths.written_then_renamed(path) as tmp:  # private from its first byte
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(data, indent=1, sort_keys=True) + "\n")
        tmp.chmod(0o600)  # whatever the umask left


class ModelService:
    """The served model, answered for holders of a key, clips of ``clip_shape`` ``(C, T, H, W)``,
    at most ``max_batch`` a request; ``probs``: answer the top-1 probability beside the label.

    Keys: either ``keys`` (``{key id: key}``), all spending one ``budget`` (``None``: unlimited),
    or ``accounts`` (``{key id: (SHA-256 hex of the key, budget)}``), each key its own budget.
    ``dedup``: how many answers are kept for replay by request id."""

    def __init__(
        self,
        model: nn.Module,
        *,
        name: str,
        clip_shape: tuple[int, int, int, int],
        audit: AuditLog,
        budget: int | None = None,
        keys: Mapping[str, str] | None = None,
        accounts: Mapping[str, tuple[str, int | None]] | None = None,
        probs: bool = True,
        max_batch: int = 256,
        dedup: int = 1024,
        device: str | torch.device | None = None,
    ) -> None:
        if (keys is None) == (accounts is None):
            raise ValueError("give the keys either as keys= (one budget) or accounts= (one each)")
        if keys is not None:
            short = [kid for kid, k in keys.items() if len(k) < MIN_KEY_LENGTH]
            if short:
                raise ValueError(
                    f"keys shorter than {MIN_KEY_LENGTH} characters: {short} (make one with "
                    "python -c 'import secrets; print(secrets.token_urlsafe(24))')"
                )
            shared = Account(budget)
            table = {kid: (digest_of(k), shared) for kid, k in keys.items()}
        else:
            if budget is not None:
                raise ValueError("with accounts=, each key has its own budget: give no budget=")
            table = {kid: (d, Account(b)) for kid, (d, b) in accounts.items()}  # type: ignore[union-attr]
        if not table:
            raise ValueError("the server needs at least one API key")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.name, self.clip_shape, self.probs = name, tuple(clip_shape), probs
        self.max_batch, self.audit = max_batch, audit
        self.per_key = accounts is not None
        self._digests = [(kid, bytes.fromhex(d)) for kid, (d, _) in table.items()]
        self._accounts = {kid: acc for kid, (_, acc) in table.items()}
        self._oracle = Oracle(model, None, num_frames=clip_shape[1], device=device)
        self._model_lock = threading.Lock()  # one batch at a time through the model
        self._state = threading.Lock()  # the replay cache and the in-flight ids, briefly
        self._answers: OrderedDict[tuple[str, str], tuple[tuple, dict[str, Any]]] = OrderedDict()
        self._pending: dict[tuple[str, str], threading.Event] = {}
        # a body's digest is taken while the model runs (hashlib lets go of the GIL), not before
        self._hasher = ThreadPoolExecutor(2, thread_name_prefix="hba-digest")
        self._seqs = itertools.count(1)
        self._dedup = dedup
        budgets = {kid: acc.budget for kid, acc in self._accounts.items()}
        audit.write(
            "start", model=name, budget=budget if keys is not None else None,
            budgets=budgets if self.per_key else None, clip_shape=list(clip_shape), probs=probs,
            max_batch=max_batch, dtypes=sorted(DTYPES), keys=list(self._accounts),
        )  # fmt: skip

    # -- keys -----------------------------------------------------------------------------------
    def authenticate(self, presented: str | None) -> str | None:
        """The id of the key ``presented``, or ``None``. Compares its SHA-256 with every key's in
        constant time (``hmac.compare_digest``), so timing does not tell how much was right."""
        if not presented:
            return None
        given = hashlib.sha256(presented.encode()).digest()
        found = None
        for kid, digest in self._digests:
            if hmac.compare_digest(given, digest) and found is None:
                found = kid
        return found

    # -- the count ------------------------------------------------------------------------------
    def status(self, key_id: str) -> dict[str, Any]:
        """What ``GET /status`` answers the holder of ``key_id``: the model's name, the clips it
        takes, and that key's account (its budget, used, remaining, requests). Takes no lock."""
        acc = self._accounts[key_id]
        used, budget = acc.used, acc.budget
        return {
            "model": self.name,
            "key_id": key_id,
            "budget": budget,
            "used": used,
            "remaining": None if budget is None else budget - used,
            "clip_shape": list(self.clip_shape),
            "dtypes": sorted(DTYPES),
            "max_batch": self.max_batch,
            "probs": self.probs,
            "requests": acc.requests,
        }

    def used(self, key_id: str | None = None) -> int | dict[str, int]:
        """Clips counted for ``key_id``'s account (``None``: ``{key id: used}`` of all). No lock."""
        if key_id is not None:
            return self._accounts[key_id].used
        return {kid: acc.used for kid, acc in self._accounts.items()}

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
        """Answer one checked request (in a worker thread: it may wait for the model).

        A request id this key used before is answered again from the cache, counted once (the
        same id with another body: 409, whatever byte differs); one still being answered is
        waited for, then answered from the cache. A request that does not fit the key's budget
        is refused whole (429), nothing evaluated. Otherwise its clips are reserved (counted,
        and the ``reserved`` line written) before the model sees them, and given back if the
        model fails (:class:`EvaluationFailed`)."""
        videos = self.decode(req, body)
        slot, fp = (key_id, req.request_id), None
        while req.replayable:
            with self._state:
                seen = self._answers.get(slot)
                running = self._pending.get(slot) if seen is None else None
                if seen is None and running is None:
                    self._pending[slot] = threading.Event()
                    break
            if running is not None:
                running.wait()  # the same id, still being answered: then look again
                continue
            fp = fp or fingerprint(req, body)
            if seen[0] != fp:  # type: ignore[index]
                raise Refusal(409, f"request id {req.request_id} was used for another body")
            return Reply(200, {**seen[1], "replayed": True}, outcome="replayed")  # type: ignore[index]
        try:
            return self._answer(key_id, req, videos, body)
        finally:
            if req.replayable:
                with self._state:
                    self._pending.pop(slot).set()

    def _answer(
        self, key_id: str, req: ClipRequest, videos: torch.Tensor, body: bytearray
    ) -> Reply:
        acc, n = self._accounts[key_id], req.shape[0]
        with acc.lock:
            if acc.budget is not None and acc.used + n > acc.budget:
                detail = (f"budget exhausted: a request for {n} clip(s), {acc.budget - acc.used} "
                          f"of {acc.budget} left")  # fmt: skip
                return Reply(429, self._counts(acc, {"detail": detail}))
            acc.used += n
            seq = next(self._seqs)
            self.audit.write("reserved", seq=seq, request_id=req.request_id, key_id=key_id,
                             clips=n, used=acc.used)  # fmt: skip
        digest = self._hasher.submit(fingerprint, req, body) if req.replayable else None
        t0 = time.perf_counter()
        try:
            with self._model_lock:
                ans, bad = self._oracle.answer_all(videos)
        except Exception as exc:
            with acc.lock:
                acc.used -= n
            raise EvaluationFailed(seq, n) from exc
        model_ms = (time.perf_counter() - t0) * 1e3
        with acc.lock:
            acc.requests += 1
        answer = self._counts(acc, {"request_id": req.request_id, "labels": ans.labels.tolist()})
        if self.probs:
            answer["probs"] = ans.probs.tolist()
        answer["nonfinite"] = bad.nonzero().flatten().tolist()
        if req.replayable:
            with self._state:
                self._answers[(key_id, req.request_id)] = (digest.result(), answer)  # type: ignore[union-attr]
                while len(self._answers) > self._dedup:
                    self._answers.popitem(last=False)
        return Reply(200, answer, n, round(model_ms, 2), seq, "answered")

    @staticmethod
    def _counts(acc: Account, answer: dict[str, Any]) -> dict[str, Any]:
        used, budget = acc.used, acc.budget
        return {**answer, "used": used, "remaining": None if budget is None else budget - used}
