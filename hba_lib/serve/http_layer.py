"""The model server's HTTP layer: uvicorn on httptools when it is installed (the extra ``serve``
has it), else on h11; ``--http`` chooses. Both refuse what they cannot parse with ``400 Invalid
HTTP request received.`` before the app sees it, and both cap a request head at
:data:`HEAD_LIMIT` bytes: h11 by its own limit on what it buffers, httptools (whose parser has
none) by :class:`CappedHttpToolsProtocol`. ``docs/serve.md`` lists where the two differ.
"""

from __future__ import annotations

import importlib.util
from typing import Any

HEAD_LIMIT = 16 * 1024
"""Bytes a request head (request line and headers) may take before it is refused: h11's
default limit on an incomplete event, kept for httptools too."""
INVALID = "Invalid HTTP request received."
"""What uvicorn answers (400) and logs for a request its HTTP layer refuses."""
LAYERS = ("auto", "httptools", "h11")


class _Pieces:
    """What uvicorn's httptools protocol gathers a body's pieces in, between two reads of the
    app (it uses ``+=``, ``len`` and ``bytes``): the pieces themselves, not a copy of them."""

    __slots__ = ("parts", "size")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def __iadd__(self, piece: bytes) -> _Pieces:
        self.parts.append(piece)
        self.size += len(piece)
        return self

    def __len__(self) -> int:
        return self.size

    def __bytes__(self) -> bytes:
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)


def have_httptools() -> bool:
    return importlib.util.find_spec("httptools") is not None


def resolve(layer: str) -> str:
    """``httptools`` or ``h11`` for a ``--http`` value (``auto``: httptools when installed)."""
    if layer not in LAYERS:
        raise ValueError(f"--http {layer!r}: one of {', '.join(LAYERS)}")
    if layer == "auto":
        return "httptools" if have_httptools() else "h11"
    if layer == "httptools" and not have_httptools():
        raise ValueError("--http httptools: httptools is not installed (pip install httptools)")
    return layer


def protocol(layer: str) -> Any:
    """What ``uvicorn.Config(http=...)`` takes for a resolved layer: ``"h11"`` or the capped
    httptools protocol class."""
    if layer == "h11":
        return "h11"
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class CappedHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol with a cap on the request head, as h11 has: a head still
        incomplete after :data:`HEAD_LIMIT` bytes is answered ``400`` (and the connection
        closed), logged as uvicorn logs the requests it cannot parse. Only the head's bytes
        count: the body that follows it in the same read is fed on as usual."""

        _in_head = True
        _head_bytes = 0

        def data_received(self, data: bytes) -> None:
            while data and self._in_head:
                room = HEAD_LIMIT - self._head_bytes
                if room <= 0:
                    self.logger.warning("%s (a request head over %d bytes)", INVALID, HEAD_LIMIT)
                    self.send_400_response(INVALID)
                    return
                part, data = data[:room], data[room:]
                self._head_bytes += len(part)
                super().data_received(part)
                if self.parser is None or self.transport.is_closing():
                    return
            if data:
                super().data_received(data)

        def on_body(self, body: bytes) -> None:
            # uvicorn gathers a body's pieces in a bytearray (a copy) and hands them over as
            # bytes (another); _Pieces keeps them as they came, and joins them only when more
            # than one waits for the app
            if type(self.cycle.body) is bytearray and not self.cycle.body:
                self.cycle.body = _Pieces()
            super().on_body(body)

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_head, self._head_bytes = True, 0  # the next request's head starts here

    return CappedHttpToolsProtocol
