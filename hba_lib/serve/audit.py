"""The model server's audit log, written ahead, and a reader that sums one, crash or not.

JSON lines, one per event, flushed at once (``tail -f`` it). A request that is to be evaluated
is written twice: a ``reserved`` line (its ``seq``, key id, request id and clips, and the
key's ``used`` with them counted) before the model sees it, then its ``classify`` line
(``outcome`` ``answered`` or ``failed``) after. So a server killed mid-batch leaves a log whose
last reservation has no ``classify`` line: :func:`summarize` counts it and says it is in flight.
A flushed line survives a killed server (it is in the kernel's page cache); ``fsync=True``
(``--audit-fsync``) makes it survive a crash of the machine too, at a disk sync per request.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class AuditLog:
    """JSON lines, one per event, flushed at once so an auditor can follow the file while the
    server runs (``fsync``: also synced to disk). Every line has ``time`` (UTC, ISO 8601) and
    ``event``; never a key."""

    def __init__(self, path: str | Path, fsync: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self.fsync = fsync

    def write(self, event: str, **fields: Any) -> None:
        """One line, flushed (and synced with ``fsync``) before this returns."""
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e3):03d}Z"
        line = json.dumps({"time": stamp, "event": event, **fields}, separators=(",", ":"))
        with self._lock:
            if self._file.closed:
                return  # the server is stopping: nothing is answered any more
            self._file.write(line + "\n")
            self._file.flush()
            if self.fsync:
                os.fsync(self._file.fileno())

    def close(self) -> None:
        with self._lock:
            self._file.close()


@dataclass
class KeySpend:
    """One key's clips in one run of the server: ``answered`` (counted on ``answered`` lines),
    ``in_flight`` (reserved, never answered nor failed: the ``reserved`` lines themselves) and
    ``counted`` (both: what the server's count held when the log ends)."""

    answered: int = 0
    in_flight: list[dict[str, Any]] = field(default_factory=list)

    @property
    def counted(self) -> int:
        return self.answered + sum(int(r["clips"]) for r in self.in_flight)


@dataclass
class RunSummary:
    """One run of the server (from its ``start`` line): ``keys`` (key id -> :class:`KeySpend`),
    whether it ended with a ``stop`` line (``stopped``; ``False``: killed, or still running),
    and ``refused`` (refusal lines by status)."""

    start: dict[str, Any]
    keys: dict[str, KeySpend] = field(default_factory=dict)
    stopped: bool = False
    refused: dict[int, int] = field(default_factory=dict)

    @property
    def answered(self) -> int:
        return sum(k.answered for k in self.keys.values())

    @property
    def counted(self) -> int:
        return sum(k.counted for k in self.keys.values())

    @property
    def in_flight(self) -> list[dict[str, Any]]:
        return [r for k in self.keys.values() for r in k.in_flight]


def summarize(path: str | Path) -> list[RunSummary]:
    """Every run in the audit log at ``path`` (a log may hold several: ``--audit-log`` given
    again), oldest first. A torn last line (the machine crashed mid-write) is ignored."""
    runs: list[RunSummary] = []
    pending: dict[int, dict[str, Any]] = {}
    for n, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        try:
            line = json.loads(raw)
        except ValueError:
            continue  # only the last line can be torn; others are whole
        event = line.get("event")
        if event == "start":
            _settle(runs, pending)
            runs.append(RunSummary(start=line))
            pending = {}
            continue
        if not runs:
            raise ValueError(f"{path}:{n}: a {event!r} line before any 'start' line")
        run = runs[-1]
        if event == "stop":
            run.stopped = True
        elif event == "reserved":
            pending[int(line["seq"])] = line
        elif event == "classify":
            seq = line.get("seq")
            if seq is not None:
                pending.pop(int(seq), None)
            if line.get("outcome") == "answered":
                run.keys.setdefault(line["key_id"], KeySpend()).answered += int(line["counted"])
        status = line.get("status")
        if isinstance(status, int) and status >= 400:
            run.refused[status] = run.refused.get(status, 0) + 1
    _settle(runs, pending)
    return runs


def _settle(runs: list[RunSummary], pending: dict[int, dict[str, Any]]) -> None:
    """The reservations a run left without a ``classify`` line: in flight when it ended."""
    if runs:
        for line in pending.values():
            runs[-1].keys.setdefault(line["key_id"], KeySpend()).in_flight.append(line)
