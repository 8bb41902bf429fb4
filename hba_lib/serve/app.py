"""The HTTP shell of the model server (FastAPI on uvicorn, the optional extra ``serve``).

Two routes, both behind the API key (header ``X-API-Key``):

- ``POST /classify``: a batch of clips (wire format: :mod:`hba_lib.oracle.remote`) -> JSON
  ``{"request_id", "labels", "probs" (unless --labels-only), "nonfinite", "used",
  "remaining"}``; refused whole with 401 (key), 400 / 413 / 415 / 422 (malformed, with a
  ``detail``), 408 (a body too slow), 409 (a request id reused for another body), 429 (the
  key's budget) or 503 (too many bytes in flight: try again);
- ``GET /status``: the model's name, the clips it takes, and the caller's account (budget,
  queries used and left).

Every request, answered or refused, is one line of the audit log, and a refusal's line says
why; a request the model evaluates is also a ``reserved`` line before it is
(:mod:`hba_lib.serve.audit`). The headers are checked before the body is read; the body is
read into a buffer that grows as it arrives (a header promises nothing the server pays for),
within :class:`Limits`. ``POST /classify`` is answered by :class:`ServeApp` straight from the
ASGI scope; the rest by FastAPI. The model runs in a worker thread and the handlers take no
lock the model holds, so ``/status`` and refusals answer while a batch is evaluated.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import traceback
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from hba_lib.oracle.remote import KEY_HEADER
from hba_lib.serve.audit import AuditLog
from hba_lib.serve.http_layer import INVALID
from hba_lib.serve.service import ClipRequest, EvaluationFailed, ModelService, Refusal, Reply

KEY_LOWER = KEY_HEADER.lower()


@dataclass(frozen=True)
class Limits:
    """What a request may take of the server: ``body_timeout`` seconds to wait for each piece of
    a body (and ``body_timeout + bytes / min_body_rate`` for all of it), ``max_inflight_bytes``
    of bodies being read or evaluated at once (a request over it: 503)."""

    body_timeout: float = 10.0
    min_body_rate: float = 1e6
    max_inflight_bytes: int = 2**30

    def body_deadline(self, nbytes: int) -> float:
        """Seconds a body of ``nbytes`` may take in all."""
        return self.body_timeout + nbytes / self.min_body_rate


WORKERS = 40
"""Threads that answer requests (as Starlette's thread pool has): the model takes one at a time."""


def _json(status: int, payload: dict[str, Any]) -> Response:
    return Response(json.dumps(payload), status, media_type="application/json")


async def _read_body(receive: Any, nbytes: int, limits: Limits) -> bytearray:
    """The body, exactly ``nbytes`` long, read from the ASGI ``receive`` as it comes (the buffer
    grows with it); else :class:`Refusal`: 400 (too long or short), 408 (a piece or the whole
    too slow), or :class:`ClientDisconnect`. One timer watches the whole body (not one a piece):
    it fires when a piece is due, and cancels the read if none came in time."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    t0 = last = loop.time()
    deadline = t0 + limits.body_deadline(nbytes)
    body = bytearray()
    late = False

    def watch() -> None:
        nonlocal timer, late
        due = min(last + limits.body_timeout, deadline)
        if loop.time() >= due:
            late = True
            task.cancel()
        else:
            timer = loop.call_at(due, watch)

    timer = loop.call_at(min(t0 + limits.body_timeout, deadline), watch)
    try:
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            if len(body) + len(chunk) > nbytes:
                raise Refusal(400, f"body longer than the {nbytes} bytes its shape and dtype make")
            body += chunk
            last = loop.time()
            if not message.get("more_body", False):
                break
    except asyncio.CancelledError:
        if not late:
            raise
        task.uncancel()
        raise Refusal(
            408, f"body too slow: {len(body)} of {nbytes} bytes after "
            f"{loop.time() - t0:.1f} s (this server waits {limits.body_timeout:g} s for each "
            f"piece, {limits.body_deadline(nbytes):.1f} s for the whole body)"
        ) from None  # fmt: skip
    finally:
        timer.cancel()
    if len(body) < nbytes:
        raise Refusal(
            400, f"truncated body: {len(body)} of the {nbytes} bytes its shape and dtype make"
        )
    return body


class HttpLayerAudit(logging.Handler):
    """Writes what uvicorn's HTTP layer refuses before the app sees it (its warnings: a request
    h11 or httptools cannot parse, or whose head is too long, answered 400; a connection over
    the concurrency limit, 503) to the audit log as ``http_layer`` lines. Attach it to the
    ``uvicorn.error`` logger."""

    STATUS = {INVALID: 400, "Exceeded concurrency limit.": 503}

    def __init__(self, audit: AuditLog) -> None:
        super().__init__(logging.WARNING)
        self.audit = audit

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        status = next((code for what, code in self.STATUS.items() if msg.startswith(what)), None)
        self.audit.write("http_layer", status=status, detail=msg)


def create_app(service: ModelService, limits: Limits | None = None) -> ServeApp:
    """The ASGI app serving ``service`` within ``limits`` (run it with uvicorn, as
    ``python -m hba_lib.serve``)."""
    limits = limits or Limits()
    inflight = 0  # bytes of the bodies being read or evaluated; only the event loop moves it
    # the requests' worker threads (a request may wait there for the model, or for its own
    # retry's answer: enough of them that a refusal never waits for a free one)
    workers = ThreadPoolExecutor(WORKERS, thread_name_prefix="hba-classify")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        service.audit.write("stop", used=service.used())
        workers.shutdown(wait=False)

    app = FastAPI(
        title="hba model server", docs_url=None, redoc_url=None, openapi_url=None,
        lifespan=lifespan,
    )  # fmt: skip
    audit = service.audit
    no_key = f"missing or wrong API key ({KEY_HEADER})"

    def client_of(request: Request) -> str | None:
        return request.client.host if request.client else None

    @app.exception_handler(HTTPException)
    async def refused_route(request: Request, exc: HTTPException) -> Response:
        """Unknown paths and methods: answered as FastAPI would, and logged."""
        audit.write(
            "refused", status=exc.status_code, path=request.url.path, method=request.method,
            client=client_of(request), detail=str(exc.detail),
        )  # fmt: skip
        return _json(exc.status_code, {"detail": exc.detail})

    @app.get("/status")
    async def status(request: Request) -> Response:
        key_id = service.authenticate(request.headers.get(KEY_HEADER))
        if key_id is None:
            audit.write("status", status=401, key_id=None, client=client_of(request),
                        detail=no_key)  # fmt: skip
            return _json(401, {"detail": no_key})
        info = service.status(key_id)
        audit.write("status", status=200, key_id=key_id, client=client_of(request),
                    used=info["used"])  # fmt: skip
        return _json(200, info)

    async def answer_clips(
        headers: Mapping[str, str], client: str | None, receive: Any
    ) -> tuple[int, dict[str, Any]]:
        """One ``POST /classify``: ``headers`` (names lowercase), the ASGI ``receive`` for the
        body; ``(status, JSON answer)``, its ``classify`` line written."""
        nonlocal inflight
        t0 = time.perf_counter()
        key_id = service.authenticate(headers.get(KEY_LOWER))
        req: ClipRequest | None = None
        held = 0
        try:
            if key_id is None:
                raise Refusal(401, no_key)
            req = service.parse_headers(headers)
            if inflight + req.nbytes > limits.max_inflight_bytes:
                raise Refusal(
                    503, f"busy: {inflight} bytes of requests in flight, and this one's "
                    f"{req.nbytes} would pass the server's limit of {limits.max_inflight_bytes} "
                    "(--max-inflight-mb); try again shortly"
                )  # fmt: skip
            held = req.nbytes
            inflight += held
            body = await _read_body(receive, req.nbytes, limits)
            reply = await asyncio.get_running_loop().run_in_executor(
                workers, service.classify, key_id, req, body
            )
        except Refusal as exc:
            reply = Reply(exc.status, {"detail": exc.message})
        except ClientDisconnect:
            reply = Reply(499, {"detail": "the connection ended before the whole body came "
                                          "(closed by the client, or cut by the HTTP layer: see "
                                          "its http_layer line)"})  # fmt: skip
        except EvaluationFailed as exc:
            audit.write("error", seq=exc.seq, traceback=traceback.format_exc(limit=5))
            reply = Reply(500, {"detail": "internal error (the server's audit log has it)"},
                          seq=exc.seq, outcome="failed")  # fmt: skip
        except Exception:  # noqa: BLE001 - a fault of the server: logged, not told
            audit.write("error", traceback=traceback.format_exc(limit=5))
            reply = Reply(500, {"detail": "internal error (the server's audit log has it)"})
        finally:
            inflight -= held
        code, answer = reply.status, reply.answer
        audit.write(
            "classify",
            request_id=req.request_id if req else headers.get("x-request-id", "")[:128],
            key_id=key_id,
            client=client,
            clips=req.shape[0] if req else None,
            counted=reply.counted,
            status=code,
            outcome=reply.outcome,
            seq=reply.seq,
            used=answer["used"] if "used" in answer else key_id and service.used(key_id),
            replayed=reply.outcome == "replayed",
            ms=round((time.perf_counter() - t0) * 1e3, 2),
            **({"model_ms": reply.model_ms} if reply.model_ms is not None else {}),
            **({"released": req.shape[0]} if reply.outcome == "failed" and req else {}),
            **({"detail": answer["detail"]} if "detail" in answer else {}),
        )
        return code, answer

    @app.post("/classify")
    async def classify(request: Request) -> Response:
        """The route as FastAPI sees it (``ServeApp`` answers ``POST /classify`` before FastAPI
        does; this keeps the route known to FastAPI, and a mounted app working)."""
        code, answer = await answer_clips(request.headers, client_of(request), request.receive)
        return _json(code, answer)

    return ServeApp(app, answer_clips)


class ServeApp:
    """The server's ASGI app: ``POST /classify``, the hot path, answered straight from the ASGI
    scope (no router, middleware or request object: a fraction of a millisecond a request);
    everything else (``GET /status``, unknown paths and methods, the lifespan) by the FastAPI
    app ``api``."""

    def __init__(self, api: FastAPI, classify: Any) -> None:
        self.api, self._classify = api, classify

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/classify":
            await self.api(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
        client = scope.get("client")
        code, answer = await self._classify(headers, client[0] if client else None, receive)
        body = json.dumps(answer).encode()
        await send({"type": "http.response.start", "status": code, "headers": [
            (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})
