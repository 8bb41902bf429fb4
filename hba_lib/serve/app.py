"""The HTTP shell of the model server (FastAPI on uvicorn, the optional extra ``serve``).

Two routes, both behind the API key (header ``X-API-Key``):

- ``POST /classify``: a batch of clips (wire format: :mod:`hba_lib.oracle.remote`) -> JSON
  ``{"request_id", "labels", "probs" (unless --labels-only), "nonfinite", "used",
  "remaining"}``; refused whole with 401 (key), 400 / 413 / 415 / 422 (malformed, with a
  ``detail``), 409 (a request id reused for another body) or 429 (the budget);
- ``GET /status``: the model's name, budget, queries used and left, the clips it takes.

Every request, answered or refused, is one line of the audit log. The headers are checked
before the body is read, the body is read into a buffer of exactly the declared size (a longer
or shorter one is refused), and the model runs in a worker thread, so ``/status`` answers while
a batch is evaluated.
"""

from __future__ import annotations

import contextlib
import json
import time
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from hba_lib.oracle.remote import KEY_HEADER
from hba_lib.serve.service import ClipRequest, ModelService, Refusal, Reply


def _json(status: int, payload: dict[str, Any]) -> Response:
    return Response(json.dumps(payload), status, media_type="application/json")


async def _read_body(request: Request, nbytes: int) -> bytearray:
    """The body, exactly ``nbytes`` long, else :class:`Refusal` (400)."""
    buf = bytearray(nbytes)
    view, pos = memoryview(buf), 0
    async for chunk in request.stream():
        end = pos + len(chunk)
        if end > nbytes:
            raise Refusal(400, f"body longer than the {nbytes} bytes its shape and dtype make")
        view[pos:end] = chunk
        pos = end
    if pos < nbytes:
        raise Refusal(400, f"truncated body: {pos} of the {nbytes} bytes its shape and dtype make")
    return buf


def create_app(service: ModelService) -> FastAPI:
    """The ASGI app serving ``service`` (run it with uvicorn, as ``python -m hba_lib.serve``)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        service.audit.write("stop", used=service.used(), requests=service.requests)

    app = FastAPI(
        title="hba model server", docs_url=None, redoc_url=None, openapi_url=None,
        lifespan=lifespan,
    )  # fmt: skip
    audit = service.audit

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
            audit.write("status", status=401, key_id=None, client=client_of(request))
            return _json(401, {"detail": f"missing or wrong API key ({KEY_HEADER})"})
        info = service.status()
        audit.write("status", status=200, key_id=key_id, client=client_of(request),
                    used=info["used"])  # fmt: skip
        return _json(200, info)

    @app.post("/classify")
    async def classify(request: Request) -> Response:
        t0 = time.perf_counter()
        key_id = service.authenticate(request.headers.get(KEY_HEADER))
        req: ClipRequest | None = None
        try:
            if key_id is None:
                raise Refusal(401, f"missing or wrong API key ({KEY_HEADER})")
            req = service.parse_headers(request.headers)
            body = await _read_body(request, req.nbytes)
            reply = await run_in_threadpool(service.classify, key_id, req, body)
        except Refusal as exc:
            reply = Reply(exc.status, {"detail": exc.message})
        except ClientDisconnect:
            reply = Reply(499, {"detail": "the client closed the connection mid-body"})
        except Exception:  # noqa: BLE001 - a fault of the model or the server: logged, not told
            audit.write("error", traceback=traceback.format_exc(limit=5))
            reply = Reply(500, {"detail": "internal error (the server's audit log has it)"})
        code, answer = reply.status, reply.answer
        audit.write(
            "classify",
            request_id=req.request_id if req else request.headers.get("x-request-id", "")[:128],
            key_id=key_id,
            client=client_of(request),
            clips=req.shape[0] if req else None,
            counted=reply.counted,
            status=code,
            used=answer["used"] if "used" in answer else service.used(),
            replayed=bool(answer.get("replayed", False)),
            ms=round((time.perf_counter() - t0) * 1e3, 2),
            **({"model_ms": reply.model_ms} if reply.model_ms is not None else {}),
            **({"detail": answer["detail"]} if "detail" in answer else {}),
        )
        return _json(code, answer)

    return app
