"""The results store: one SQLite file, one row per job, committed when the job's chunk finishes.

A job runs in a chunk of jobs that share one ``run_many`` call (``chunk_size``; see
``hba_lib.experiments.runner``), and its row is committed when that call returns, one
transaction per row: a chunk killed midway loses its unfinished jobs (rerun next time), never
a committed row.

Schema (table ``results``)::

    key       TEXT PRIMARY KEY   -- job_key(job): SHA-256 of the job's canonical JSON
    status    TEXT NOT NULL      -- 'running' (started, not finished), 'done' or 'failed'
    payload   TEXT               -- canonical JSON of the record (job + result), NULL while running
    checksum  TEXT               -- SHA-256 of key, status and payload, written with them
    started   REAL               -- unix time the job was started
    finished  REAL               -- unix time the row was committed
    worker    TEXT               -- host:pid of the process that committed the row: the one that
                                    ran the job (local backend), or the driver (Ray backend,
                                    whose tasks run in worker processes)

A row is loaded only when it is ``done`` or ``failed`` **and** its checksum matches. SQLite's
transactions are atomic, so a process killed mid-commit leaves the previous state; what a
crash *can* leave is a job marked ``running`` that never finished (killed during the attack),
and what a copy taken mid-write, a disk error or a writer outside this module can leave is a
payload that does not match its checksum. Both count as not done: the runner reruns them and
:func:`load_results` skips them (with a warning).

The database runs in WAL mode with ``synchronous=FULL``: a committed row survives the process
being killed, and readers (a notebook watching a sweep) do not block the writer. One runner
per store at a time.

Adversarial videos (on request) go beside the store, ``<store>.adv/<key>.npz``: the clean
video's uint8 frames and the float16 perturbation ``x_adv - x``, compressed; written to a
temporary name and renamed before the row is committed, so a committed row's file is whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hba_lib import paths
from hba_lib.experiments.sweep import canonical_json

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    payload TEXT,
    checksum TEXT,
    started REAL,
    finished REAL,
    worker TEXT
)
"""
FINAL = ("done", "failed")


def checksum(key: str, status: str, payload: str | None) -> str:
    """SHA-256 of a row's key, status and payload."""
    return hashlib.sha256(f"{key}\n{status}\n{payload}".encode()).hexdigest()


def worker_id() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) the store at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=60.0, isolation_level=None)  # explicit transactions
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute(SCHEMA)
    return con


@contextmanager
def transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE ... COMMIT`` (rolled back on error)."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _valid(key: str, status: str, payload: str | None, check: str | None) -> bool:
    return status in FINAL and payload is not None and check == checksum(key, status, payload)


def finished_keys(con: sqlite3.Connection, retry_failed: bool = False) -> set[str]:
    """Keys of rows that are complete and intact (``done``, and ``failed`` unless retrying)."""
    rows = con.execute("SELECT key, status, payload, checksum FROM results").fetchall()
    keep = ("done",) if retry_failed else FINAL
    return {k for k, s, p, c in rows if s in keep and _valid(k, s, p, c)}


def mark_started(con: sqlite3.Connection, keys: Iterable[str]) -> None:
    """Mark jobs as running (one transaction); an earlier unfinished row is replaced."""
    now, who = time.time(), worker_id()
    with transaction(con):
        con.executemany(
            "INSERT OR REPLACE INTO results (key, status, payload, checksum, started, finished, "
            "worker) VALUES (?, 'running', NULL, NULL, ?, NULL, ?)",
            [(k, now, who) for k in keys],
        )


def commit_record(con: sqlite3.Connection, record: dict[str, Any]) -> None:
    """Write one finished job's record (``record['key']``, ``record['status']``): one transaction."""
    key, status = record["key"], record["status"]
    if status not in FINAL:
        raise ValueError(f"a committed record is 'done' or 'failed', got {status!r}")
    payload = canonical_json(record)
    with transaction(con):
        con.execute(
            "INSERT INTO results (key, status, payload, checksum, started, finished, worker) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET status=excluded.status, "
            "payload=excluded.payload, checksum=excluded.checksum, finished=excluded.finished, "
            "worker=excluded.worker, started=COALESCE(results.started, excluded.started)",
            (key, status, payload, checksum(key, status, payload), record.get("started"),
             time.time(), record.get("worker") or worker_id()),
        )  # fmt: skip


def store_status(path: str | Path) -> dict[str, int]:
    """Row counts: ``done``, ``failed``, ``running`` (unfinished) and ``corrupt`` (bad checksum)."""
    con = connect(path)
    try:
        rows = con.execute("SELECT key, status, payload, checksum FROM results").fetchall()
    finally:
        con.close()
    out = {"done": 0, "failed": 0, "running": 0, "corrupt": 0}
    for k, s, p, c in rows:
        if s == "running":
            out["running"] += 1
        elif _valid(k, s, p, c):
            out[s] += 1
        else:
            out["corrupt"] += 1
    return out


def load_records(path: str | Path, include_failed: bool = True) -> list[dict[str, Any]]:
    """Every complete, intact record of the store (unfinished and corrupt rows skipped, warned)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results store not found: {path}")
    con = connect(path)
    try:
        rows = con.execute(
            "SELECT key, status, payload, checksum, started, finished, worker FROM results "
            "ORDER BY rowid"
        ).fetchall()
    finally:
        con.close()
    records, running, corrupt = [], 0, 0
    for key, status, payload, check, started, finished, worker in rows:
        if status == "running":
            running += 1
            continue
        if not _valid(key, status, payload, check):
            corrupt += 1
            continue
        if status == "failed" and not include_failed:
            continue
        rec = json.loads(payload)
        rec.update(started=started, finished=finished, worker=worker)
        records.append(rec)
    if running or corrupt:
        warnings.warn(
            f"{path.name}: skipped {running} unfinished and {corrupt} corrupt row(s); "
            "rerun the sweep to complete them",
            stacklevel=2,
        )
    return records


COLUMNS = (
    "key", "status", "model", "dataset", "split", "video", "attack", "attack_name", "goal",
    "seed", "label", "target", "success", "attacked", "stop_reason", "queries", "queries_init",
    "queries_optimisation", "queries_check", "map", "map_star", "sparsity", "distance",
    "linf", "iterations", "adv_label", "wall_time", "trace", "error", "params", "num_candidates",
    "candidates", "adv_file", "started", "finished", "worker",
)  # fmt: skip


def load_results(path: str | Path, include_failed: bool = True):
    """The store as a pandas DataFrame, one row per finished job (see :data:`COLUMNS`).

    ``trace`` is a list of ``TraceRow(queries, distance, map, l2)``; ``params`` a dict; integer
    columns that can be missing (``target``, ``adv_label``, a failed job's) are ``Int64``.
    Unfinished and corrupt rows are never loaded.
    """
    import pandas as pd

    from hba_lib.attacks.common import TraceRow

    recs = load_records(path, include_failed)
    for r in recs:
        r["trace"] = [TraceRow(*row) for row in (r.get("trace") or [])]
    df = pd.DataFrame.from_records(recs, columns=list(COLUMNS))
    for col in ("label", "target", "adv_label", "queries", "iterations"):  # None -> <NA>, not NaN
        df[col] = df[col].astype("Int64")
    df = df.sort_values(["model", "dataset", "attack", "seed", "goal", "video"], kind="stable")
    return df.reset_index(drop=True)


# -- adversarial videos ---------------------------------------------------------------------------
def adversarial_dir(store: str | Path) -> Path:
    """Folder of a store's adversarial videos: ``<store>.adv/``."""
    store = Path(store)
    return store.with_name(store.name + ".adv")


def save_adversarial(store: str | Path, key: str, x: torch.Tensor, x_adv: torch.Tensor) -> str:
    """Save ``x_adv`` as uint8 clean frames + float16 delta (compressed); return the file name."""
    from hba_lib.data.video import to_uint8_frames

    folder = adversarial_dir(store)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{key}.npz"
    clean = to_uint8_frames(x)
    delta = (x_adv.float().cpu() - x.float().cpu()).numpy().astype(np.float16)
    with paths.written_then_renamed(folder / name) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, clean=clean, delta=delta)
        f.flush()
        os.fsync(f.fileno())  # on disk before the rename commits it
    return name


def load_adversarial(store: str | Path, key: str) -> torch.Tensor:
    """A saved adversarial video ``[C, T, H, W]`` in [0, 1] (float16 delta: about 1e-3 exact)."""
    from hba_lib.data.video import to_model_layout

    path = adversarial_dir(store) / f"{key}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"no adversarial video saved for job {key}: {path}")
    with np.load(path) as f:
        x = to_model_layout(f["clean"])
        return (x + torch.from_numpy(f["delta"].astype(np.float32))).clamp(0.0, 1.0)
