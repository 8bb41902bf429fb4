"""A TFLite video classifier behind the models' interface (issue 16 (1)): MoViNet-A0-Stream.

The wrapper's logic (states carried frame to frame, clip models, resizing, the pool, query-only,
clear errors) is checked on small stand-in interpreters that need no runtime; MoViNet itself
(``../shared/models``, the LiteRT runtime of the extra ``real``) against the interpreter fed by
hand, the oracle, and an attack on a real clip. Those tests skip, saying why, without either.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import sys
import threading

import numpy as np
import pytest
import torch

from hba_lib import paths
from hba_lib.data.download import ChecksumError, RemoteFile
from hba_lib.models import build_model
from hba_lib.models import movinet as mv
from hba_lib.models.tflite import (
    ModelFileMissingError,
    QueryOnlyError,
    RuntimeMissingError,
    TFLiteVideoClassifier,
    interpreter_class,
    runtime_available,
)
from hba_lib.oracle import Oracle

SHARED_MODEL = paths.SHARED / "models" / mv.FOLDER / mv.MODEL_FILE
CLIPS = paths.REAL_DATA / "action_clips"
needs_model = pytest.mark.skipif(
    not SHARED_MODEL.is_file(), reason=f"MoViNet not present at {SHARED_MODEL} (../shared absent)"
)
needs_runtime = pytest.mark.skipif(
    not runtime_available(), reason="no TFLite runtime (pip install ai-edge-litert: extra 'real')"
)
needs_clips = pytest.mark.skipif(
    not CLIPS.is_dir(), reason=f"real clips not present at {CLIPS} (../shared absent)"
)


# -- stand-in interpreters (no runtime needed) -------------------------------------------------------
def _detail(shape, dtype=np.float32):
    return {"shape": np.array(shape, dtype=np.int32), "dtype": dtype}


class FakeRunner:
    """A stream model: ``acc <- 0.5 acc + mean RGB of the frame``, ``count <- count + 1``,
    logits ``[acc, count]`` (the order of frames matters); or a clip model: logits = the
    frame-weighted mean RGB and the frame count."""

    def __init__(self, kind: str, size=(8, 8), frames=4, channels_last=True) -> None:
        self.kind, self.size, self.frames, self.last = kind, size, frames, channels_last
        self.calls = 0

    def get_input_details(self):
        if self.kind == "stream":
            return {"image": _detail([1, 1, *self.size, 3]), "acc": _detail([1, 3]),
                    "count": _detail([1], np.int32)}  # fmt: skip
        shape = [1, self.frames, *self.size, 3] if self.last else [1, 3, self.frames, *self.size]
        return {"clip": _detail(shape)}

    def get_output_details(self):
        out = {"logits": _detail([1, 4])}
        if self.kind == "stream":
            out.update(acc=_detail([1, 3]), count=_detail([1], np.int32))
        return out

    def __call__(self, **kw):
        self.calls += 1
        if self.kind == "stream":
            image = kw["image"]
            assert image.shape == (1, 1, *self.size, 3) and image.dtype == np.float32
            acc = 0.5 * kw["acc"] + image.mean(axis=(1, 2, 3))
            count = kw["count"] + 1
            return {"logits": np.concatenate([acc, count[None].astype(np.float32)], 1),
                    "acc": acc, "count": count}  # fmt: skip
        clip = kw["clip"] if self.last else kw["clip"].transpose(0, 2, 3, 4, 1)
        assert clip.shape == (1, self.frames, *self.size, 3)
        w = np.arange(1, self.frames + 1, dtype=np.float32)[None, :, None, None, None]
        rgb = (clip * w).mean(axis=(1, 2, 3))
        return {"logits": np.concatenate([rgb, [[float(self.frames)]]], 1).astype(np.float32)}


def fake_interpreter(kind: str, **kw):
    made = []

    class FakeInterpreter:
        def __init__(self, model_path: str, num_threads: int = 1) -> None:
            self.runner = FakeRunner(kind, **kw)
            made.append(self)

        def get_signature_list(self):
            return {"serving_default": {}}

        def get_signature_runner(self, key):
            assert key == "serving_default"
            return self.runner

    FakeInterpreter.made = made
    return FakeInterpreter


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "stand_in.tflite"
    path.write_bytes(b"stand-in")
    return path


def test_a_stream_model_carries_its_states_frame_to_frame(model_file):
    model = TFLiteVideoClassifier(model_file, num_frames=5, interpreter=fake_interpreter("stream"))
    assert model.signature.kind == "stream" and model.signature.states == ("acc", "count")
    assert model.size == (8, 8) and model.num_frames == 5 and model.classes == list("0123")
    x = torch.rand(1, 3, 5, 8, 8, generator=torch.Generator().manual_seed(0))
    acc = np.zeros(3)
    for t in range(5):  # by hand: acc <- 0.5 acc + the frame's mean RGB
        acc = 0.5 * acc + x[0, :, t].double().mean(dim=(1, 2)).numpy()
    out = model(x)
    assert out.shape == (1, 4) and out.dtype == torch.float32
    assert np.allclose(out[0, :3].numpy(), acc, atol=1e-6) and float(out[0, 3]) == 5.0
    backwards = model(x.flip(2))  # the order of the frames matters: the states carry it
    assert not torch.allclose(backwards[0, :3], out[0, :3])


def test_frames_are_resized_inside_the_model(model_file):
    model = TFLiteVideoClassifier(model_file, interpreter=fake_interpreter("stream"))
    x = torch.rand(2, 3, 3, 20, 20, generator=torch.Generator().manual_seed(1))
    by_hand = torch.nn.functional.interpolate(
        x.permute(0, 2, 1, 3, 4).reshape(6, 3, 20, 20), size=(8, 8), mode="bilinear",
        align_corners=False, antialias=True,
    ).reshape(2, 3, 3, 8, 8).permute(0, 2, 1, 3, 4)  # fmt: skip
    assert torch.equal(model(x), model(by_hand.contiguous()))
    small = torch.rand(1, 3, 3, 4, 4)  # upsampled too
    assert model(small).shape == (1, 4)


@pytest.mark.parametrize("channels_last", [True, False])
def test_a_clip_model_takes_the_clip_in_one_call(model_file, channels_last):
    fake = fake_interpreter("clip", channels_last=channels_last)
    model = TFLiteVideoClassifier(model_file, ["a", "b", "c", "d"], interpreter=fake)
    assert model.signature.kind == "clip" and model.num_frames == 4 and model.classes[1] == "b"
    x = torch.rand(3, 3, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    w = torch.arange(1.0, 5.0).view(1, 1, 4, 1, 1)
    want = (x * w).mean(dim=(2, 3, 4))
    out = model(x)
    assert torch.allclose(out[:, :3], want, atol=1e-6) and bool((out[:, 3] == 4).all())
    with pytest.raises(ValueError, match="T=4"):
        model(torch.rand(1, 3, 6, 8, 8))
    with pytest.raises(ValueError, match="class names for 4 logits"):
        TFLiteVideoClassifier(model_file, ["a", "b"], interpreter=fake)


def test_a_batch_is_answered_by_a_pool_one_interpreter_per_thread(model_file):
    fake = fake_interpreter("stream")
    model = TFLiteVideoClassifier(model_file, workers=3, interpreter=fake)
    x = torch.rand(6, 3, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    batch = model(x)
    one_by_one = torch.cat([model(x[i : i + 1]) for i in range(6)])
    assert torch.equal(batch, one_by_one)
    assert 2 <= model.interpreters == len(fake.made) <= 1 + 3  # the caller's and the pool's
    assert sum(i.runner.calls for i in fake.made) == 12 * 4  # 12 clips x 4 frames
    oracle = Oracle(model, budget=10, num_frames=4)
    ans = oracle(x[:5])
    assert oracle.used == 5 and torch.equal(ans.labels, batch[:5].argmax(1))


def test_it_is_query_only(model_file):
    model = TFLiteVideoClassifier(model_file, interpreter=fake_interpreter("stream"))
    x = torch.rand(1, 3, 2, 8, 8, requires_grad=True)
    with pytest.raises(QueryOnlyError, match="query-only.*no gradients"):
        model(x)
    with torch.no_grad():
        assert not model(x).requires_grad
    assert not list(model.parameters())


def test_a_missing_file_says_what_is_missing_and_how_to_get_it(tmp_path, monkeypatch):
    with pytest.raises(ModelFileMissingError, match="TFLite model file not found: .*nope.tflite"):
        TFLiteVideoClassifier(tmp_path / "nope.tflite", interpreter=fake_interpreter("stream"))
    with pytest.raises(ModelFileMissingError) as exc:
        build_model("movinet_a0", path=tmp_path / "empty_folder")
    message = str(exc.value)
    assert "movinet_int8.tflite not found" in message and str(tmp_path / "empty_folder") in message
    assert "python -m hba_lib.models.movinet" in message and "HBA_MOVINET" in message
    assert isinstance(exc.value, FileNotFoundError)
    # the environment variable is looked at before ../shared
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / mv.MODEL_FILE).write_bytes(b"x")
    monkeypatch.setenv(mv.ENV, str(folder))
    assert mv.locate_movinet() == folder / mv.MODEL_FILE
    with pytest.raises(ModelFileMissingError, match="label map .* not found"):
        mv.movinet_a0(interpreter=fake_interpreter("stream"))
    with pytest.raises(ValueError, match="600 classes"):
        build_model("movinet_a0", 10)


def test_a_missing_runtime_says_how_to_install_it(model_file, monkeypatch):
    for name in ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime",
                 "tflite_runtime.interpreter"):  # fmt: skip
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    assert not runtime_available()
    with pytest.raises(RuntimeMissingError, match="pip install ai-edge-litert") as exc:
        TFLiteVideoClassifier(model_file)
    assert exc.value.__cause__ is None and exc.value.__suppress_context__  # no deep traceback
    assert isinstance(exc.value, ImportError)


def test_missing_lists_what_movinet_still_needs_and_how_to_get_it(tmp_path, monkeypatch):
    for name in ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime",
                 "tflite_runtime.interpreter"):  # fmt: skip
        monkeypatch.setitem(sys.modules, name, None)
    needs = mv.missing(tmp_path / "empty_folder")
    assert len(needs) == 2 and "pip install ai-edge-litert" in needs[0]
    assert "python -m hba_lib.models.movinet" in needs[1]
    (tmp_path / mv.MODEL_FILE).write_bytes(b"x")
    needs = mv.missing(tmp_path)
    assert len(needs) == 2 and mv.LABELS_FILE in needs[1]
    (tmp_path / mv.LABELS_FILE).write_text("a\n")
    monkeypatch.undo()
    assert all("TFLite runtime" in need for need in mv.missing(tmp_path))  # the files are there


# -- the weights: fetched with a checksum check, from a local server --------------------------------
@pytest.fixture
def served(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_Quiet, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/assets"
    httpd.shutdown()
    httpd.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


def test_a_wrong_checksum_deletes_the_download(served, tmp_path):
    root, url = served
    (root / "assets").mkdir()
    (root / "assets" / "m.tflite").write_bytes(b"tampered")
    files = (RemoteFile("m.tflite", "m.tflite", sha256=hashlib.sha256(b"original").hexdigest()),)
    with pytest.raises(ChecksumError, match="sha256"):
        mv.fetch_movinet(tmp_path / "out", url, files, progress=False, retries=0)
    assert not list((tmp_path / "out").glob("*"))


@needs_model
def test_fetch_movinet_downloads_and_verifies_the_published_files(served, tmp_path):
    root, url = served
    for f in mv.MOVINET_A0_FILES:  # the publisher's layout, served from 127.0.0.1
        (root / "assets" / f.url).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHARED_MODEL.parent / f.name, root / "assets" / f.url)
    got = mv.fetch_movinet(tmp_path / "out", url, progress=False)
    assert got == tmp_path / "out" / mv.MODEL_FILE
    assert got.read_bytes() == SHARED_MODEL.read_bytes()
    assert (tmp_path / "out" / mv.LABELS_FILE).is_file()
    # a served copy that is not the released one is refused and not kept
    (root / "assets" / "movinet_int8.tflite").write_bytes(
        SHARED_MODEL.read_bytes()[:-10] + b"x" * 10
    )
    with pytest.raises(ChecksumError, match="sha256"):
        mv.fetch_movinet(tmp_path / "again", url, progress=False, retries=0)
    assert not (tmp_path / "again" / mv.MODEL_FILE).exists()


# -- MoViNet-A0 itself --------------------------------------------------------------------------------
def _clip(name: str, size: int = 112) -> torch.Tensor:
    from hba_lib.data.video import to_model_layout
    from hba_lib.data.video_io import read_snippet

    frames, _ = read_snippet(CLIPS / name, num_frames=16, size=size)
    return to_model_layout(frames)


@pytest.fixture(scope="module")
def movinet():
    return build_model("movinet_a0", path=SHARED_MODEL, workers=2)


@needs_model
@needs_runtime
@needs_clips
def test_movinet_gives_the_logits_of_the_interpreter_fed_by_hand(movinet):
    x = _clip("arm_wrestling_k400.mp4", size=172)  # the model's size: nothing to resize
    interp = interpreter_class()(model_path=str(SHARED_MODEL), num_threads=1)
    runner = interp.get_signature_runner("serving_default")
    details = runner.get_input_details()
    states = {n: np.zeros(d["shape"], d["dtype"]) for n, d in details.items() if n != "image"}
    assert len(states) == 43
    frames = x.permute(1, 2, 3, 0).numpy()  # [T, H, W, 3] in [0, 1]
    for frame in frames:
        out = runner(image=np.ascontiguousarray(frame[None, None]), **states)
        states = {n: out[n] for n in states}
    by_hand = out["logits"][0]
    with torch.no_grad():
        logits = movinet(x[None])[0].numpy()
    assert np.array_equal(logits, by_hand)
    assert movinet.classes[int(logits.argmax())] == "arm wrestling"  # as SOURCES' top-1 says
    assert len(movinet.classes) == 600 and movinet.num_frames == 16


@needs_model
@needs_runtime
@needs_clips
def test_movinet_batch_equals_clips_one_by_one_and_the_oracle_counts_clips(movinet):
    names = ["cleaning_pool_k400.mp4", "using_segway_k400_R6llTwEh07w.mp4", "hitting_baseball.mp4"]
    x = torch.stack([_clip(n) for n in names])  # 112 x 112: resized to 172 inside
    with torch.no_grad():
        batch = movinet(x)
        one_by_one = torch.cat([movinet(x[i : i + 1]) for i in range(3)])
    assert torch.equal(batch, one_by_one)
    assert [movinet.classes[i] for i in batch.argmax(1)] == [
        "cleaning pool", "using segway", "hitting baseball"]  # fmt: skip
    oracle = Oracle(movinet, budget=5)
    ans = oracle(x)
    assert oracle.used == 3 and oracle.calls == 1 and torch.equal(ans.labels, batch.argmax(1))
    with pytest.raises(ValueError, match="T=16"):
        oracle(x[:, :, :8])


@needs_model
@needs_runtime
@needs_clips
def test_an_attack_on_a_real_clip_returns_a_video_movinet_classifies_differently(movinet):
    from hba_lib.attacks import make_attack

    x = _clip("hitting_baseball.mp4")
    candidates = torch.stack([_clip("cleaning_pool_k400.mp4"), _clip("arm_wrestling_k400.mp4")])
    with torch.no_grad():
        label = int(movinet(x[None]).argmax())
    oracle = Oracle(movinet)
    res = make_attack("opt", query_budget=40, seed=0).run(oracle, x, label, candidates=candidates)
    assert res.queries == oracle.used <= 40
    assert res.success and res.label != label and res.distance > 0
    with torch.no_grad():  # a direct call, not through the oracle: the model really says so
        assert int(movinet(res.x_adv[None]).argmax()) == res.label != label
    assert res.distance < float((candidates - x).flatten(1).norm(dim=1).min())
