"""The model server against real servers (issue 15): each server is ``python -m hba_lib.serve``
started on 127.0.0.1 at a free port in a subprocess, and always stopped.

What must hold: an attack over HTTP gives the in-process result for the same seed, bit for bit
(float32 bodies), ``run`` and ``run_many`` alike; the server's count is the attack's; the budget
holds server-side against a client that ignores its own; no key or a wrong key costs nothing;
malformed requests get a 4xx with a message, cost nothing and leave the server answering; a
retried request is counted once; a server killed mid-attack gives a clear error and the attack
keeps the best adversarial video it had; the audit log has a line per request, never a key.
"""

from __future__ import annotations

import http.client
import json
import math
import socket
import threading
import time
import uuid
from pathlib import Path

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
from hba_lib.serve.process import ServerProcess  # noqa: E402

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
