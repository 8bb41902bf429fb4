"""The model server against real servers (issue 15): each server is ``python -m hba_lib.serve``
started on 127.0.0.1 at a free port in a subprocess, and always stopped.

What must hold: an attack over HTTP gives the in-process result for the same seed, bit for bit
(float32 bodies), ``run`` and ``run_many`` alike; the server's count is the attack's; the budget
holds server-side against a client that ignores its own; no key or a wrong key costs nothing;
malformed requests get a 4xx with a message, cost nothing and leave the server answering; a
retried request is counted once; a server killed mid-attack gives a clear error and the attack
keeps the best adversarial video it had; the audit log has a line per request, never a key.

Issue 23 (the server hardened) adds: another body under a used id is 409 whatever byte differs;
``/status`` and refusals answer during a batch; a SIGKILL mid-batch leaves a log that adds up;
header-only requests cost no memory, stalled bodies 408, bytes in flight are capped (503);
one key per attacker with its own budget; TLS; a frozen server ends a client call in bounded
time. Its slow test model is ``tests/serve_slow_model.py``.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi", reason="the model server needs the extra 'serve' (fastapi)")
pytest.importorskip("uvicorn", reason="the model server needs the extra 'serve' (uvicorn)")

from hba_lib.attacks import attack_set, make_attack  # noqa: E402
from hba_lib.data.synthetic import SyntheticActions  # noqa: E402
from hba_lib.models import load_default_model  # noqa: E402
from hba_lib.oracle import BudgetExhausted, Oracle  # noqa: E402
from hba_lib.oracle.remote import (  # noqa: E402
    CountMismatch,
    RemoteOracle,
    ServerError,
    ServerUnavailable,
    encode_clips,
)
from hba_lib.serve.__main__ import main as serve_main  # noqa: E402
from hba_lib.serve.__main__ import plain_http_warning  # noqa: E402
from hba_lib.serve.audit import AuditLog, summarize  # noqa: E402
from hba_lib.serve.process import ServerProcess  # noqa: E402
from hba_lib.serve.service import add_key, digest_of, key_id_of, read_keys_json  # noqa: E402

KEY = "test-key-0123456789abcdef"
CLIP = (3, 16, 32, 32)


class Server(ServerProcess):
    """``python -m hba_lib.serve --model c3d`` on 127.0.0.1, port 0, 1 thread, with the key."""

    def __init__(self, audit: Path, *args: str) -> None:
        self.audit = audit
        super().__init__("c3d", *args, key=KEY, threads=1, audit_log=audit, startup_timeout=90)

    def status(self) -> dict:
        code, answer = request(self.url, "GET", "/status")
        assert code == 200, answer
        return answer

    def audit_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.audit.read_text().splitlines()]


def request(url: str, method: str, path: str, body=b"", headers=None, key=KEY):
    """One plain HTTP request: ``(status, JSON answer)``; ``(0, error)`` when nobody answers."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    hdrs = {} if key is None else {"X-API-Key": key}
    try:
        conn.request(method, path, body=body, headers={**hdrs, **(headers or {})})
        resp = conn.getresponse()
        data = resp.read()
    except OSError as exc:
        return 0, {"detail": str(exc)}
    finally:
        conn.close()
    return resp.status, json.loads(data) if data else {}


def clip_headers(shape, dtype="float32", request_id=None) -> dict[str, str]:
    h = {"Content-Type": "application/octet-stream", "X-Clip-Dtype": dtype,
         "X-Clip-Shape": ",".join(map(str, shape))}  # fmt: skip
    if request_id is not None:
        h["X-Request-Id"] = request_id
    return h


def post_clips(url, videos, dtype="float32", request_id=None, key=KEY):
    body = bytes(encode_clips(videos, dtype))
    return request(
        url, "POST", "/classify", body, clip_headers(videos.shape, dtype, request_id), key
    )


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """1 torch thread here, as in the servers (--threads 1): one arithmetic on both sides of the
    wire (and a busy 2-core CI box); the session's setting comes back afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("serve") / "audit.jsonl", "--budget", "100000")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def model():
    return load_default_model("c3d")


@pytest.fixture(scope="module")
def chosen(model):
    return attack_set(SyntheticActions(split="test"), model, n=2, num_candidates=4, seed=0)


def _same(a, b) -> None:
    assert torch.equal(a.x_adv, b.x_adv)
    assert (a.success, a.stop_reason, a.queries, a.queries_by_phase) == (
        b.success, b.stop_reason, b.queries, b.queries_by_phase)  # fmt: skip
    assert a.distance == b.distance and a.trace == b.trace


def test_attack_over_http_equals_in_process_and_counts_agree(server, model, chosen):
    attack = make_attack("temporal+spatial", optimizer="opt", query_budget=80, seed=0)
    local = Oracle(model)
    remote = RemoteOracle(server.url, KEY)
    start = server.status()["used"]
    assert remote.used == start and remote.budget == 100_000
    cands = chosen.candidates
    one_local = attack.run(local, chosen.xs[0], chosen.labels[0], candidates=cands[0])
    one_remote = attack.run(remote, chosen.xs[0], chosen.labels[0], candidates=cands[0])
    _same(one_remote, one_local)
    many_local = attack.run_many(local, chosen.xs, chosen.labels, candidates=cands, progress=False)
    many_remote = attack.run_many(
        remote, chosen.xs, chosen.labels, candidates=cands, progress=False
    )
    for r, lo in zip(many_remote, many_local):
        _same(r, lo)
    spent = one_remote.queries + sum(r.queries for r in many_remote)
    assert spent > 0 and server.status()["used"] - start == spent == local.used
    assert remote.used - start == spent and sum(remote.counts.values()) == spent
    lines = [ln for ln in server.audit_lines() if ln["event"] == "classify"]
    assert sum(ln["counted"] for ln in lines) == server.status()["used"]
    assert all(ln["key_id"].startswith("key-") and ln["status"] == 200 for ln in lines)
    assert KEY not in server.audit.read_text()


def test_quantised_wire_formats_answer(server, model):
    x = torch.rand(4, *CLIP, generator=torch.Generator().manual_seed(1))
    for dtype, step in (("float16", 1e-3), ("uint8", 1 / 255)):
        q = RemoteOracle(server.url, KEY, dtype=dtype)
        rounded = x.half().float() if dtype == "float16" else (x * 255).round() / 255
        assert torch.equal(q(x).labels, Oracle(model)(rounded).labels)
        assert (rounded - x).abs().max() <= step


def test_no_key_or_wrong_key_costs_nothing(server, tmp_path):
    used = server.status()["used"]
    x = torch.rand(2, *CLIP)
    for key in (None, "", "wrong-key-0123456789abcdef", KEY[:-1]):
        code, answer = post_clips(server.url, x, key=key)
        assert code == 401 and "API key" in answer["detail"]
        assert request(server.url, "GET", "/status", key=key)[0] == 401
    assert server.status()["used"] == used
    with pytest.raises(ServerError, match="refused the API key") as info:
        RemoteOracle(server.url, "wrong-key-0123456789abcdef")
    assert info.value.status == 401
    refused = [ln for ln in server.audit_lines() if ln.get("status") == 401]
    assert len(refused) >= 9 and all(ln["key_id"] is None for ln in refused)
    assert all("API key" in ln["detail"] for ln in refused)  # every refusal says why
    assert "wrong-key" not in server.audit.read_text()


def _raw_truncated_body(url: str) -> None:
    """Declare a full body, send half of it, hang up: the server must shrug."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    n = math.prod(CLIP) * 4
    head = (f"POST /classify HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {KEY}\r\n"
            "Content-Type: application/octet-stream\r\nX-Clip-Dtype: float32\r\n"
            f"X-Clip-Shape: 1,{','.join(map(str, CLIP))}\r\nContent-Length: {n}\r\n\r\n")  # fmt: skip
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head.encode() + b"\0" * (n // 2))


def test_malformed_requests_get_4xx_and_cost_nothing(server):
    used = server.status()["used"]
    one = bytes(encode_clips(torch.rand(1, *CLIP)))
    nan = torch.rand(1, *CLIP)
    nan[0, 0, 0, 0, 0] = math.nan
    inf16 = torch.rand(1, *CLIP)
    inf16[0, 1, 2, 3, 4] = math.inf
    ok = clip_headers((1, *CLIP))
    cases = {  # name: (headers, body, expected status)
        "no content type": ({**ok, "Content-Type": "application/json"}, one, 415),
        "no dtype header": ({k: v for k, v in ok.items() if k != "X-Clip-Dtype"}, one, 400),
        "unknown dtype": ({**ok, "X-Clip-Dtype": "float64"}, one, 415),
        "no shape header": ({k: v for k, v in ok.items() if k != "X-Clip-Shape"}, one, 400),
        "non-numeric shape": ({**ok, "X-Clip-Shape": "one,3,16,32,32"}, one, 400),
        "wrong ndim": ({**ok, "X-Clip-Shape": "3,16,32,32"}, one, 400),
        "negative dim": ({**ok, "X-Clip-Shape": "-1,3,16,32,32"}, one, 400),
        "empty batch": ({**ok, "X-Clip-Shape": "0,3,16,32,32"}, b"", 422),
        "wrong channels": ({**ok, "X-Clip-Shape": "1,1,16,32,32"}, one[: len(one) // 3], 422),
        "wrong frame count": ({**ok, "X-Clip-Shape": "1,3,8,32,32"}, one[: len(one) // 2], 422),
        "wrong frame size": ({**ok, "X-Clip-Shape": "1,3,16,64,64"}, one * 4, 422),
        "oversized batch": ({**ok, "X-Clip-Shape": "257,3,16,32,32"}, one, 413),
        "absurd batch": ({**ok, "X-Clip-Shape": "1000000000000,3,16,32,32"}, one, 413),
        "truncated body": (ok, one[:-1], 400),
        "body too long": (ok, one + b"\0", 400),
        "empty body": (ok, b"", 400),
        "NaN in float32": (ok, bytes(encode_clips(nan)), 422),
        "Inf in float16": ({**ok, "X-Clip-Dtype": "float16"}, bytes(encode_clips(inf16, "float16")), 422),
        "bad request id": ({**ok, "X-Request-Id": "../../etc/passwd"}, one, 400),
    }  # fmt: skip
    for name, (headers, body, expected) in cases.items():
        code, answer = request(server.url, "POST", "/classify", body, headers)
        assert code == expected, (name, code, answer)
        assert isinstance(answer.get("detail"), str) and answer["detail"], name
    assert request(server.url, "GET", "/classify")[0] == 405
    assert request(server.url, "POST", "/nowhere", one, ok)[0] == 404
    _raw_truncated_body(server.url)
    assert server.status()["used"] == used  # still answering, nothing counted
    code, answer = request(server.url, "POST", "/classify", one, ok)
    assert code == 200 and answer["used"] == used + 1
    assert not [ln for ln in server.audit_lines() if ln.get("status") == 500]


def test_a_retried_request_is_counted_once(server):
    x = torch.rand(3, *CLIP)
    rid = uuid.uuid4().hex
    used = server.status()["used"]
    code, first = post_clips(server.url, x, request_id=rid)
    code2, again = post_clips(server.url, x, request_id=rid)
    assert code == code2 == 200 and again.pop("replayed") is True
    assert again == first and server.status()["used"] == used + 3
    code, answer = post_clips(server.url, torch.rand(3, *CLIP), request_id=rid)
    assert code == 409 and "another body" in answer["detail"]


class DroppingProxy:
    """Forwards TCP to ``port``; once ``armed``, hangs up on the client as the next answer comes
    back: the server has answered (and counted), the client sees a dropped connection."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed = False
        self.dropped = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pipe, args=(client, up, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(up, client, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, answers: bool) -> None:
        try:
            while data := src.recv(65536):
                if answers and self.armed:
                    self.armed = False
                    self.dropped += 1
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.listener.close()


def test_a_dropped_connection_is_retried_without_double_counting(server, model):
    proxy = DroppingProxy(server.port)
    try:
        remote = RemoteOracle(f"http://127.0.0.1:{proxy.port}", KEY, backoff=0.05)
        used = remote.used
        x = torch.rand(5, *CLIP)
        proxy.armed = True
        answer = remote(x)
    finally:
        proxy.close()
    assert proxy.dropped == 1
    assert torch.equal(answer.labels, Oracle(model)(x).labels)
    assert remote.used == used + 5 == server.status()["used"]
    last = [ln for ln in server.audit_lines() if ln["event"] == "classify"][-2:]
    assert [(ln["counted"], ln["replayed"]) for ln in last] == [(5, False), (0, True)]
    assert last[0]["request_id"] == last[1]["request_id"]


def test_another_client_on_the_same_budget_is_caught(server):
    a, b = RemoteOracle(server.url, KEY), RemoteOracle(server.url, KEY)
    x = torch.rand(1, *CLIP)
    a(x)  # b still thinks the count is where it was
    with pytest.raises(CountMismatch, match="another client"):
        b(x)


def test_budget_holds_server_side(tmp_path, model, chosen):
    srv = Server(tmp_path / "audit.jsonl", "--budget", "40", "--labels-only")
    try:
        x = torch.rand(30, *CLIP)
        assert post_clips(srv.url, x)[0] == 200
        code, answer = post_clips(srv.url, torch.rand(11, *CLIP))  # ignores its own budget
        assert code == 429 and "budget exhausted" in answer["detail"]
        assert answer["used"] == 30 and srv.status()["used"] == 30  # refused whole
        assert post_clips(srv.url, x[:10])[0] == 200
        assert post_clips(srv.url, x[:1])[0] == 429 and srv.status()["remaining"] == 0
        assert [ln["status"] for ln in srv.audit_lines() if ln["event"] == "classify"] == [
            200, 429, 200, 429]  # fmt: skip
    finally:
        srv.stop()
    srv = Server(tmp_path / "audit2.jsonl", "--budget", "300", "--labels-only")
    try:
        remote = RemoteOracle(srv.url, KEY)
        assert remote.budget == 300 and not remote.server["probs"]
        assert math.isnan(float(remote(x[:1]).probs[0]))  # labels only
        with pytest.raises(BudgetExhausted):
            remote(torch.rand(300, *CLIP))  # refused here first: nothing sent
        assert srv.status()["used"] == 1
        keyframes = make_attack("temporal", optimizer="opt", seed=0)
        with pytest.raises(ValueError, match="labels only"):  # Algorithm 1 needs the probability
            keyframes.run(remote, chosen.xs[0], chosen.labels[0], candidates=chosen.candidates[0])
        before = remote.used
        attack = make_attack("opt", optimizer="opt", seed=0)
        res = attack.run(remote, chosen.xs[0], chosen.labels[0], candidates=chosen.candidates[0])
        assert res.stop_reason == "budget_exhausted" and res.success
        assert srv.status()["used"] == before + res.queries == remote.used <= 300
    finally:
        srv.stop()


def test_server_killed_mid_attack(tmp_path, model, chosen):
    srv = Server(tmp_path / "audit.jsonl")
    killed = threading.Event()

    def kill_after(n: int) -> None:
        while srv.proc.poll() is None:
            code, info = request(srv.url, "GET", "/status")
            if code == 200 and info["used"] >= n:
                srv.proc.kill()  # SIGKILL: no goodbye
                killed.set()
                return
            time.sleep(0.005)

    try:
        remote = RemoteOracle(srv.url, KEY, retries=2, backoff=0.05)
        watcher = threading.Thread(target=kill_after, args=(80,), daemon=True)
        watcher.start()
        attack = make_attack("opt", optimizer="opt", query_budget=5000, seed=0)
        results = attack.run_many(
            remote, chosen.xs, chosen.labels, candidates=chosen.candidates, progress=False
        )
        watcher.join(timeout=30)
        assert killed.is_set()
        for x, y, res in zip(chosen.xs, chosen.labels, results):
            assert res.stop_reason == "oracle_unavailable"
            assert "ServerUnavailable" in res.info["error"] and srv.url in res.info["error"]
            assert res.success and res.info.get("success_from_earlier_answer")
            assert not torch.equal(res.x_adv, x) and 0 < res.queries < 5000
            with torch.inference_mode():
                assert int(model(res.x_adv[None]).argmax(1)) != y  # truly adversarial
        with pytest.raises(ServerUnavailable, match="no answer from the model server"):
            remote(chosen.xs[0])
    finally:
        srv.stop()


def test_a_sweep_runs_against_a_served_model(server, chosen, tmp_path, monkeypatch):
    from hba_lib.experiments import load_results, run_sweep

    monkeypatch.setenv("HBA_SERVE_KEY", KEY)  # the key never goes into the sweep or its store
    sweep = tmp_path / "served.yaml"
    sweep.write_text(
        f"model: {server.url}\ndataset: {{name: synthetic, split: test}}\n"
        f"videos: [{chosen.indices[0]}, {chosen.indices[1]}]\nnum_candidates: 4\n"
        "attacks:\n  opt-60: {attack: opt, query_budget: 60}\n"
    )
    used = server.status()["used"]
    report = run_sweep(sweep, tmp_path / "served.sqlite", progress=False)
    rows = load_results(tmp_path / "served.sqlite")
    assert report.failed == 0 and rows["status"].tolist() == ["done", "done"]
    assert server.status()["used"] - used == int(rows["queries"].sum()) == report.queries
    assert KEY not in (tmp_path / "served.sqlite").read_bytes().decode("latin-1")


def test_an_art_peer_over_http_equals_in_process(server, model, chosen):
    pytest.importorskip("art", reason="the ART peers need the extra 'peers'")
    from hba_lib.attacks.peers import sign_opt_untargeted

    remote = RemoteOracle(server.url, KEY)
    used = remote.used
    x, y = chosen.xs[0], chosen.labels[0]
    here = sign_opt_untargeted(Oracle(model).fork(80), x, y, nb_classes=12, seed=0)
    there = sign_opt_untargeted(remote.fork(80), x, y, nb_classes=12, seed=0)
    assert torch.equal(here.x_adv, there.x_adv) and here.queries == there.queries > 0
    assert (here.success, here.stop_reason) == (there.success, there.stop_reason)
    assert server.status()["used"] - used == there.queries == remote.used - used


def test_a_server_that_cannot_start_says_why(tmp_path):
    """``ServerProcess`` (the launcher the benchmark and these tests share) raises with what the
    server printed, and leaves no process behind."""
    with pytest.raises(RuntimeError, match="did not start") as info:
        ServerProcess("no_such_model", key=KEY, audit_log=tmp_path / "a.jsonl", startup_timeout=60)
    said = str(info.value).split("\n", 1)[1]
    assert "cannot load --model no_such_model: unknown model" in said, said
    assert "Traceback" not in said, said  # a message, not a stack


# -- issue 23: the server hardened ----------------------------------------------------------------
TESTS = Path(__file__).resolve().parent
BATCH_256 = (256, *CLIP)


def raw_exchange(url: str, head: dict[str, str], body: bytes = b"", timeout: float = 30.0):
    """Send a POST /classify with exactly ``head`` and ``body`` on a socket, read the answer:
    ``(status, JSON answer, seconds)``; for requests http.client would not send (a stalled body)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    lines = "".join(f"{k}: {v}\r\n" for k, v in head.items())
    t0 = time.perf_counter()
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(f"POST /classify HTTP/1.1\r\nHost: {host}\r\n{lines}\r\n".encode() + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            more = s.recv(65536)
            if not more:
                break
            data += more
    elapsed = time.perf_counter() - t0
    status = int(data.split(b" ", 2)[1]) if data else 0
    payload = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
    return status, json.loads(payload) if payload else {}, elapsed


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 1 << 30


def full_headers(shape, key=KEY) -> dict[str, str]:
    n = math.prod(shape) * 4
    return {"X-API-Key": key, **clip_headers(shape), "Content-Length": str(n)}


def header_only(url: str, shape, key=KEY) -> socket.socket:
    """Open a POST /classify that declares a float32 body of ``shape`` and sends none of it."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    lines = "".join(f"{k}: {v}\r\n" for k, v in full_headers(shape, key).items())
    s.sendall(f"POST /classify HTTP/1.1\r\nHost: {host}\r\n{lines}\r\n".encode())
    return s


def lines_of(audit: Path) -> list[dict]:
    return [json.loads(line) for line in audit.read_text().splitlines()]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")


def slow_server(audit: Path, *args: str, key: str | None = KEY) -> ServerProcess:
    """The slow test model (10 ms a clip, ``tests/serve_slow_model.py``) served on 32 x 32 clips."""
    with pytest.MonkeyPatch.context() as mp:
        path = os.environ.get("PYTHONPATH", "")
        mp.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(TESTS), path) if p))
        return ServerProcess("serve_slow_model:slow", "--size", "32", "32", *args, key=key,
                             threads=1, audit_log=audit, startup_timeout=90)  # fmt: skip


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """A --keys file: alice (budget 50), bob (80), carol (unlimited); ``{id: key}`` and its path."""
    path = tmp_path_factory.mktemp("keys") / "keys.json"
    secrets = {kid: add_key(path, kid, budget)
               for kid, budget in (("alice", 50), ("bob", 80), ("carol", None))}  # fmt: skip
    return path, secrets


@pytest.fixture(scope="module")
def slow(tmp_path_factory, keys):
    """The slow model behind one key per attacker, a 1 s body timeout and an 80 MB in-flight cap."""
    audit = tmp_path_factory.mktemp("slow") / "audit.jsonl"
    srv = slow_server(audit, "--keys", str(keys[0]), "--body-timeout", "1",
                      "--max-inflight-mb", "80", key=None)  # fmt: skip
    srv.audit = audit
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def h11_server(tmp_path_factory):
    """The C3D served on h11 (``--http h11``), where ``server`` runs on httptools when it is
    installed."""
    srv = Server(tmp_path_factory.mktemp("serve-h11") / "audit.jsonl", "--http", "h11")
    yield srv
    srv.stop()


@pytest.fixture(params=["httptools", "h11"])
def layer(request):
    """``(name, server)`` for each HTTP layer (httptools skipped where it is not installed)."""
    if request.param == "h11":
        return "h11", request.getfixturevalue("h11_server")
    pytest.importorskip("httptools", reason="the httptools layer needs httptools")
    return "httptools", request.getfixturevalue("server")


def raw_answers(url: str, raw: bytes, shut: bool = False) -> bytes:
    """The first bytes of the answer to ``raw`` sent on its own connection."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(raw)
        if shut:
            s.shutdown(socket.SHUT_WR)
        return s.recv(4096)


def test_what_the_http_layer_refuses_is_logged_too(layer):
    """Requests the HTTP layer cannot parse never reach the app; uvicorn answers 400, and the
    audit log says so (an ``http_layer`` line), a cut chunked body included."""
    _, server = layer
    before = len(server.audit_lines())
    chunked = (f"POST /classify HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n"
               "Content-Type: application/octet-stream\r\nX-Clip-Dtype: float32\r\n"
               f"X-Clip-Shape: 1,{','.join(map(str, CLIP))}\r\nTransfer-Encoding: chunked\r\n"
               "\r\n10\r\n0123456789abcdef\r\nzz\r\n")  # fmt: skip
    for raw in (b"GARBAGE\r\n\r\n", b"GET /status HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                chunked.encode()):  # fmt: skip
        assert raw_answers(server.url, raw).startswith(b"HTTP/1.1 400"), raw
    time.sleep(0.2)
    new = server.audit_lines()[before:]
    layer_lines = [ln for ln in new if ln["event"] == "http_layer"]
    assert len(layer_lines) == 3, new
    assert all(ln["status"] == 400 and ln["detail"] for ln in layer_lines), new
    cut = [ln for ln in new if ln["event"] == "classify"]
    assert len(cut) == 1 and cut[0]["counted"] == 0 and "http_layer" in cut[0]["detail"], cut


def test_both_http_layers_cap_the_head_and_differ_where_docs_say(layer):
    """A head still incomplete after 16 KiB is refused by both layers; a whole head over 16 KiB
    by httptools only (h11 limits what it buffers, not a head that came whole); a head and a
    body in one send pass whatever their size. Then the differences docs/serve.md lists."""
    name, server = layer
    before = len(server.audit_lines())
    pad = b"X-Pad: " + b"a" * 17_000 + b"\r\n"
    status = b"GET /status HTTP/1.1\r\nHost: x\r\nX-API-Key: " + KEY.encode() + b"\r\n"
    assert raw_answers(server.url, status + pad).startswith(b"HTTP/1.1 400")  # never ends
    whole = raw_answers(server.url, status + pad + b"\r\n")
    assert whole.startswith(b"HTTP/1.1 400" if name == "httptools" else b"HTTP/1.1 200"), whole
    assert raw_answers(server.url, status + b"X-Pad: " + b"a" * 15_000 + b"\r\n\r\n").startswith(
        b"HTTP/1.1 200"
    )
    one = bytes(encode_clips(torch.rand(1, *CLIP)))  # 196 KiB right behind its head
    lines = "".join(f"{k}: {v}\r\n" for k, v in full_headers((1, *CLIP)).items())
    head = f"POST /classify HTTP/1.1\r\nHost: x\r\n{lines}\r\n".encode()
    assert raw_answers(server.url, head + one).startswith(b"HTTP/1.1 200")
    get = b"GET /status HTTP/1.1\r\n"
    differ = {  # the rest of a request after its request line: (h11's status, httptools's)
        b"\r\n": (400, 401),  # no Host: h11 refuses
        b"Host: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n": (401, 400),  # twice
        b"Host: x\r\nX-A: a\r\n b\r\n\r\n": (401, 400),  # a header folded on two lines
    }
    differ = {get + rest: codes for rest, codes in differ.items()}
    differ[b"GET /status HTTP/1.1\nHost: x\n\n"] = (401, 400)  # bare LF line ends
    for raw, codes in differ.items():
        want = codes[name == "httptools"]
        assert raw_answers(server.url, raw).startswith(b"HTTP/1.1 %d" % want), (name, raw)
    time.sleep(0.2)
    refused = [ln for ln in server.audit_lines()[before:] if ln["event"] == "http_layer"]
    assert len(refused) == (5 if name == "httptools" else 2), refused
    assert all(ln["status"] == 400 for ln in refused)
    if name == "httptools":
        assert sum("request head over 16384 bytes" in ln["detail"] for ln in refused) == 2


def test_same_id_with_another_body_is_409_never_a_replay(server):
    """Any byte that differs makes another request: one byte, or every byte but those the old
    fingerprint (one byte in 997) sampled."""
    gen = torch.Generator().manual_seed(23)
    x, other = torch.rand(2, *CLIP, generator=gen), torch.rand(2, *CLIP, generator=gen)
    body = bytes(encode_clips(x))
    one_byte = bytearray(body)
    one_byte[1] ^= 0x01
    everywhere = bytearray(encode_clips(other))
    everywhere[::997] = body[::997]
    assert sum(a != b for a, b in zip(everywhere, body)) > len(body) // 2
    rid = uuid.uuid4().hex
    hdrs = clip_headers(x.shape, request_id=rid)
    code, first = request(server.url, "POST", "/classify", body, hdrs)
    assert code == 200
    for name, changed in (("one byte", one_byte), ("all but the sampled bytes", everywhere)):
        code, answer = request(server.url, "POST", "/classify", bytes(changed), hdrs)
        assert code == 409 and "another body" in answer["detail"], (name, code, answer)
    code, again = request(server.url, "POST", "/classify", body, hdrs)  # the id still replays
    assert code == 200 and again.pop("replayed") is True and again == first
    code, own = request(server.url, "POST", "/classify", bytes(everywhere), clip_headers(x.shape))
    assert code == 200 and own["probs"] != first["probs"]  # those bytes have their own answer


def polls_during_batches(url: str, key: str, wanted: int = 100) -> dict[str, list[float]]:
    """Batches of 40 clips (400 ms each) back to back, with ``key``; meanwhile ``/status``, a 401
    on ``/status`` and a 401 on ``/classify``, polled in turn: ``{what: [seconds]}``, only the
    polls that began inside a batch (50 ms after it was sent, 60 ms before its answer)."""
    x = torch.rand(40, *CLIP, generator=torch.Generator().manual_seed(0))
    body, head = bytes(encode_clips(x, "uint8")), clip_headers(x.shape, "uint8")  # encoded once
    busy: list[tuple[float, float]] = []
    stop = threading.Event()

    def batches() -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            code, _ = request(url, "POST", "/classify", body, head, key)
            assert code == 200
            busy.append((t0, time.perf_counter()))

    def inside(t: float) -> bool:
        return any(a + 0.05 < t < b - 0.06 for a, b in busy)

    kinds = {"status": ("GET", "/status", key, 200), "401 status": ("GET", "/status", None, 401),
             "401 post": ("POST", "/classify", "wrong-key-0123456789abcdef", 401)}  # fmt: skip
    polls: dict[str, list[tuple[float, float]]] = {k: [] for k in kinds}
    assert request(url, "POST", "/classify", body, head, key)[0] == 200  # warm the server up
    worker = threading.Thread(target=batches, daemon=True)
    worker.start()
    try:
        time.sleep(0.1)
        deadline = time.monotonic() + 20
        while (
            time.monotonic() < deadline
            and min(sum(inside(t) for t, _ in v) for v in polls.values()) < wanted
        ):
            for what, (method, path, k, want) in kinds.items():
                t0 = time.perf_counter()
                code, _ = request(url, method, path, key=k)
                polls[what].append((t0, time.perf_counter() - t0))
                assert code == want, (what, code)
            time.sleep(0.005)
    finally:
        stop.set()
        worker.join(timeout=10)
    slowest = max(s for v in polls.values() for _, s in v)
    for what, v in polls.items():
        n = sum(inside(t) for t, _ in v)
        assert n >= wanted, f"{what}: {n} polls inside a batch in 30 s, the slowest {slowest:.3f} s"
    return {what: [s for t, s in v if inside(t)] for what, v in polls.items()}


def test_status_and_refusals_answer_while_a_batch_is_evaluated(slow, keys):
    """p99 under 50 ms over the 100 polls that fall inside 400 ms batches, for ``/status`` and
    two 401s. A busy 2-core CI box can deschedule a process for tens of ms (a p99 of 100 polls
    forgives one such poll), so one more round is allowed; handlers that wait for the model take
    up to 400 ms, most polls over 50 ms, in every round."""
    for attempt in range(2):
        p99 = {}
        for what, inside in polls_during_batches(slow.url, keys[1]["carol"]).items():
            p99[what] = float(np.percentile(inside, 99))
            print(
                what,
                "slowest ms",
                [round(v * 1e3) for v in sorted(inside)[-6:]],
                "median",
                round(float(np.median(inside)) * 1e3, 1),
            )
        print(
            f"round {attempt + 1}: p99 "
            + ", ".join(f"{w} {v * 1e3:.1f} ms" for w, v in p99.items())
        )
        if max(p99.values()) < 0.050:
            break
    assert max(p99.values()) < 0.050, {w: f"{v * 1e3:.1f} ms" for w, v in p99.items()}


def test_two_keys_spend_their_own_budgets_exactly_and_concurrently(slow, keys):
    path, secret = keys
    carol_before = request(slow.url, "GET", "/status", key=secret["carol"])[1]["used"]
    answered = {"alice": 0, "bob": 0}
    refusals: list[dict] = []
    lock = threading.Lock()

    def spend(kid: str) -> None:
        gen = torch.Generator().manual_seed(hash(kid) % 1000)
        for size in (7, 1):  # 7 clips a request until refused, then 1 until refused
            while True:
                code, answer = post_clips(slow.url, torch.rand(size, *CLIP, generator=gen),
                                          key=secret[kid])  # fmt: skip
                if code == 429:
                    with lock:
                        refusals.append(answer)
                    break
                assert code == 200, answer
                with lock:
                    answered[kid] += size

    threads = [threading.Thread(target=spend, args=(k,)) for k in ("alice", "bob") * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert answered == {"alice": 50, "bob": 80}
    assert len(refusals) == 8 and all("budget exhausted" in r["detail"] for r in refusals)
    for kid, budget in (("alice", 50), ("bob", 80)):
        info = request(slow.url, "GET", "/status", key=secret[kid])[1]
        assert (info["key_id"], info["budget"], info["used"], info["remaining"]) == (
            kid, budget, budget, 0)  # fmt: skip
    assert request(slow.url, "GET", "/status", key=secret["carol"])[1]["used"] == carol_before
    run = summarize(slow.audit)[-1]
    assert (run.keys["alice"].answered, run.keys["bob"].answered) == (50, 80)
    text = slow.audit.read_text()
    assert not any(s in text for s in secret.values())  # ids only, never a key
    assert json.loads(path.read_text())["alice"]["sha256"] == digest_of(secret["alice"])
    assert not any(s in path.read_text() for s in secret.values())  # nor in the keys file


def test_a_stalled_body_is_cut_with_408_and_logged(slow, keys):
    carol = keys[1]["carol"]
    body = bytes(encode_clips(torch.rand(1, *CLIP)))
    head = full_headers((1, *CLIP), carol)
    code, answer, seconds = raw_exchange(slow.url, head, body[: len(body) // 2])
    assert code == 408 and "too slow" in answer["detail"], (code, answer)
    print(f"stalled body: 408 after {seconds:.2f} s (--body-timeout 1)")
    assert 0.9 < seconds < 1.0 + 1.5, seconds  # --body-timeout 1
    line = [ln for ln in lines_of(slow.audit) if ln.get("status") == 408][-1]
    assert line["key_id"] == "carol" and "too slow" in line["detail"] and line["counted"] == 0


def test_bytes_in_flight_are_capped_with_503(slow, keys):
    carol = keys[1]["carol"]
    held = header_only(slow.url, BATCH_256, carol)  # 50 MB promised, of the 80 MB cap
    try:
        time.sleep(0.2)
        code, answer, _ = raw_exchange(slow.url, full_headers(BATCH_256, carol))
        assert code == 503 and "in flight" in answer["detail"], (code, answer)
        assert post_clips(slow.url, torch.rand(1, *CLIP), key=carol)[0] == 200  # small: fits
    finally:
        held.close()
    refused = [ln for ln in lines_of(slow.audit) if ln.get("status") == 503]
    assert refused and all("in flight" in ln["detail"] for ln in refused)


def test_header_only_requests_do_not_grow_the_server(server):
    """30 requests that promise 256 clips (48 MiB each) and send no byte of them."""
    pid = server.proc.pid
    assert post_clips(server.url, torch.rand(1, *CLIP))[0] == 200  # warm
    before = rss_kib(pid)
    socks = [header_only(server.url, BATCH_256) for _ in range(30)]
    try:
        time.sleep(1.0)
        assert server.status()["used"] >= 1  # still answering
        grown = (rss_kib(pid) - before) / 1024
    finally:
        for s in socks:
            s.close()
    print(f"30 header-only requests: server RSS grew by {grown:.1f} MB")
    assert grown < 64, f"RSS grew by {grown:.0f} MB"
    time.sleep(0.3)
    assert server.status()  # and after they hung up


def test_a_frozen_server_ends_a_remote_call_within_its_bound(slow, keys):
    carol = keys[1]["carol"]
    remote = RemoteOracle(slow.url, carol, timeout=1.0, per_clip_timeout=0.05,
                          connect_timeout=1.0, retries=1, backoff=0.05)  # fmt: skip
    used = remote.used
    bound = remote.max_wait(2)
    assert bound == pytest.approx(2 * (2 * 1.0 + 2 * 1.1) + 0.05)
    x = torch.rand(2, *CLIP)
    slow.proc.send_signal(signal.SIGSTOP)
    try:
        t0 = time.perf_counter()
        with pytest.raises(ServerUnavailable, match="timed out .* frozen") as info:
            remote(x)
        elapsed = time.perf_counter() - t0
    finally:
        slow.proc.send_signal(signal.SIGCONT)
    assert slow.url in str(info.value)
    print(f"frozen server: ServerUnavailable after {elapsed:.2f} s (bound {bound:.2f} s)")
    assert 2 * 1.1 * 0.9 < elapsed <= bound, (elapsed, bound)  # it waited, and no longer
    time.sleep(0.5)  # the server wakes up to two copies of one request: counted once at most
    assert request(slow.url, "GET", "/status", key=carol)[1]["used"] in (used, used + 2)


def test_sigkill_during_a_batch_leaves_a_log_that_adds_up(tmp_path):
    """The log, summed, is the highest count any client was told, plus the one request that was
    reserved and never answered, which it names. The kill comes 200 ms into a 400 ms batch, as
    the client sees it (the log does not decide when)."""
    audit = tmp_path / "audit.jsonl"
    srv = slow_server(audit)
    told: list[tuple[int, float]] = []  # (used, when)
    ended: list[BaseException] = []

    def attack() -> None:
        remote = RemoteOracle(srv.url, KEY, retries=1, backoff=0.05)
        x = torch.rand(40, *CLIP)  # 400 ms a request
        try:
            while True:
                remote(x)
                told.append((remote.used, time.monotonic()))
        except ServerUnavailable as exc:
            ended.append(exc)

    worker = threading.Thread(target=attack, daemon=True)
    try:
        worker.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(told) >= 3 and time.monotonic() - told[-1][1] > 0.2:
                srv.proc.kill()  # SIGKILL, halfway through the next batch
                break
            time.sleep(0.002)
        worker.join(timeout=30)
    finally:
        srv.stop()
    assert ended and len(told) >= 3
    highest = max(used for used, _ in told)
    run = summarize(audit)[-1]
    assert not run.stopped
    assert run.answered == highest
    assert [(r["clips"], r["key_id"]) for r in run.in_flight] == [(40, key_id_of(KEY))]
    assert run.counted == highest + 40 == run.in_flight[0]["used"]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (``openssl``): ``(certfile, keyfile)``."""
    if shutil.which("openssl") is None:
        pytest.skip("the TLS test makes its certificate with the openssl command")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_round_trip_equals_plain_http(server, certificate, tmp_path):
    cert, key = certificate
    srv = Server(tmp_path / "audit.jsonl", "--ssl-certfile", str(cert), "--ssl-keyfile", str(key))
    try:
        assert srv.url.startswith("https://127.0.0.1:")
        x = torch.rand(6, *CLIP, generator=torch.Generator().manual_seed(5))
        over_tls = RemoteOracle(srv.url, KEY, cafile=cert)(x)
        plain = RemoteOracle(server.url, KEY)(x)
        assert torch.equal(over_tls.labels, plain.labels)
        assert torch.equal(over_tls.probs, plain.probs)  # bit for bit
        with pytest.raises(ServerError, match="not trusted"):  # no cafile: the system's CAs
            RemoteOracle(srv.url, KEY)
        with pytest.raises(ServerUnavailable):  # plain HTTP to a TLS port gets no answer
            RemoteOracle(srv.url.replace("https", "http"), KEY, timeout=2, retries=0)
    finally:
        srv.stop()
    assert KEY not in (tmp_path / "audit.jsonl").read_text()


@pytest.mark.parametrize(
    ("host", "tls", "warned"),
    [("127.0.0.1", False, False), ("::1", False, False), ("localhost", False, False),
     ("127.0.0.2", False, False), ("0.0.0.0", False, True), ("::", False, True),
     ("192.168.1.5", False, True), ("models.example.org", False, True), ("0.0.0.0", True, False)],
)  # fmt: skip
def test_the_server_warns_off_loopback_without_tls(host, tls, warned):
    warning = plain_http_warning(host, tls)
    assert (warning is not None) == warned
    if warned:
        assert host in warning and "TLS" in warning


def test_keys_files_are_made_checked_and_revoked(tmp_path, capsys):
    path = tmp_path / "keys.json"
    assert serve_main(["keys", "add", str(path), "dana", "--budget", "30"]) == 0
    secret = capsys.readouterr().out.strip()
    assert len(secret) >= 16 and read_keys_json(path) == {"dana": (digest_of(secret), 30)}
    assert secret not in path.read_text() and (path.stat().st_mode & 0o777) == 0o600
    with pytest.raises(ValueError, match="already has"):
        add_key(path, "dana", 5)
    serve_main(["keys", "list", str(path)])
    assert capsys.readouterr().out.strip() == "dana 30"
    serve_main(["keys", "revoke", str(path), "dana"])
    with pytest.raises(ValueError, match="holds no key"):
        read_keys_json(path)
    for bad, why in (
        ({"eve": {"sha256": "a-real-secret-not-a-digest-0123", "budget": 1}}, "64 lowercase hex"),
        ({"eve": {"sha256": "0" * 64, "budget": -1}}, "budget"),
        ({"eve": {"sha256": "0" * 64}}, "must be"),
        ({"e ve": {"sha256": "0" * 64, "budget": 1}}, "key id"),
    ):
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=why):
            read_keys_json(path)


def test_summarize_reads_runs_failures_and_a_torn_last_line(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    log.write("start", keys=["a", "b"])
    log.write("reserved", seq=1, key_id="a", clips=5, used=5)
    log.write("classify", seq=1, key_id="a", counted=5, status=200, outcome="answered")
    log.write("classify", seq=None, key_id="a", counted=0, status=200, outcome="replayed")
    log.write("reserved", seq=2, key_id="b", clips=3, used=3)
    log.write("classify", seq=2, key_id="b", counted=0, status=500, outcome="failed", released=3)
    log.write("reserved", seq=3, key_id="b", clips=4, used=4)  # killed here
    log.write("start", keys=["a"])  # restarted on the same log
    log.write("reserved", seq=1, key_id="a", clips=2, used=2)
    log.write("classify", seq=1, key_id="a", counted=2, status=200, outcome="answered")
    log.write("classify", key_id=None, counted=0, status=401, outcome="refused", detail="key")
    log.write("stop", used={"a": 2})
    log.close()
    with (tmp_path / "audit.jsonl").open("a") as f:
        f.write('{"time":"2026-12-04T16:00:00.000Z","event":"reser')  # the machine crashed
    first, second = summarize(tmp_path / "audit.jsonl")
    assert not first.stopped and second.stopped
    assert (first.keys["a"].answered, first.keys["a"].counted) == (5, 5)
    assert (first.keys["b"].answered, first.keys["b"].counted) == (0, 4)
    assert [r["seq"] for r in first.in_flight] == [3] and first.refused == {500: 1}
    assert (second.answered, second.counted, second.in_flight, second.refused) == (
        2,
        2,
        [],
        {401: 1},
    )
