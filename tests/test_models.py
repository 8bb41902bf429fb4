"""Every model maps [B, C, T, H, W] videos in [0, 1] to [B, K] logits; 3D-ResNets checkpoints load."""

from __future__ import annotations

import pytest
import torch

from hba_lib.models import (
    MODEL_NAMES,
    VideoClassifier,
    build_model,
    count_parameters,
    load_3d_resnets_checkpoint,
    top_k,
)
from hba_lib.models.normalize import HARA_MEAN_255
from hba_lib.models.resnext3d import ResNeXtBottleneck

torch.set_num_threads(2)

# (name, kwargs, input shape) small enough to run on 2 CPU cores in well under a second each.
CASES = [
    ("c3d_small", {}, (2, 3, 16, 32, 32)),
    ("lrcn_small", {}, (2, 3, 16, 32, 32)),
    ("resnext3d", {"layers": (1, 1, 1, 1), "width": 16, "cardinality": 8}, (2, 3, 16, 32, 32)),
    ("lrcn", {"backbone": "resnet18", "hidden": 32}, (2, 3, 4, 32, 32)),
    ("lrcn", {"hidden": 32}, (1, 3, 2, 80, 80)),  # Inception-v3 needs >= 75 x 75 frames
    ("r3d_18", {}, (1, 3, 4, 32, 32)),
    ("mc3_18", {}, (1, 3, 4, 32, 32)),
    ("r2plus1d_18", {}, (1, 3, 4, 32, 32)),
]


def test_every_model_name_is_covered():
    covered = {name for name, _, _ in CASES} | {"c3d"}  # c3d: test_c3d_is_resnext101 below
    assert covered == set(MODEL_NAMES)


@pytest.mark.parametrize(
    ("name", "kw", "shape"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_model_maps_unit_videos_to_logits(name, kw, shape):
    torch.manual_seed(0)
    model = build_model(name, 7, **kw).eval()
    assert isinstance(model, VideoClassifier)
    x = torch.rand(shape)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (shape[0], 7)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    # each clip's logits depend on that clip only (no batch mixing in eval mode)
    with torch.no_grad():
        single = model(x[:1])
    torch.testing.assert_close(out[:1], single, rtol=1e-4, atol=1e-4)
    # the saved spec rebuilds the same architecture
    spec = model.spec
    assert spec["name"] == name and spec["num_classes"] == 7
    rebuilt = build_model(spec["name"], spec["num_classes"], **spec["kwargs"])
    rebuilt.load_state_dict(model.state_dict(), strict=True)


def test_c3d_is_resnext101_cardinality32_shortcut_b():
    model = build_model("c3d", 101)
    net = model.net
    blocks = [m for m in net.modules() if isinstance(m, ResNeXtBottleneck)]
    assert len(blocks) == 3 + 4 + 23 + 3  # depth 101 = 3 * 33 + 2
    assert all(b.conv2.groups == 32 for b in blocks)
    # shortcut B: projection (1x1x1 conv + BN) only where the shape changes
    assert sum(b.downsample is not None for b in blocks) == 4
    assert net.conv1.kernel_size == (7, 7, 7) and net.conv1.stride == (1, 2, 2)
    assert net.fc.in_features == 2048
    # the published size of 3D-ResNeXt-101 (Hara et al.): 47.7 M parameters with a 101-way head
    assert 47.0e6 < count_parameters(net) < 48.5e6
    # 0-255 pixels minus the UCF-101 mean, no std: the wrapper does it
    assert model.scale == 255.0
    torch.testing.assert_close(model.mean.flatten(), torch.tensor(HARA_MEAN_255["ucf101"]))
    torch.testing.assert_close(model.std.flatten(), torch.ones(3))
    model.eval()
    x = torch.rand(1, 3, 16, 32, 32)
    with torch.no_grad():
        out = model(x)
        ref = net(x * 255.0 - torch.tensor(HARA_MEAN_255["ucf101"]).view(1, 3, 1, 1, 1))
    assert out.shape == (1, 101)
    torch.testing.assert_close(out, ref)


def test_c3d_rejects_other_depths_and_bad_names():
    with pytest.raises(ValueError, match="depth-101"):
        build_model("c3d", 10, depth=50)
    with pytest.raises(ValueError, match="unknown model"):
        build_model("c3d_large", 10)
    with pytest.raises(ValueError, match="depth"):
        build_model("resnext3d", 10, depth=18)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("c3d_small", 1)
    assert (
        len(
            [
                m
                for m in build_model("resnext3d", 5, depth=50).modules()
                if isinstance(m, ResNeXtBottleneck)
            ]
        )
        == 16
    )


@pytest.mark.parametrize(
    ("bad", "err", "match"),
    [
        (torch.rand(2, 16, 3, 32, 32), ValueError, r"\[B, C=3, T, H, W\]"),  # [B, T, C, H, W]
        (torch.rand(3, 16, 32, 32), ValueError, "video\\[None\\]"),  # one unbatched video
        (torch.rand(1, 3, 16, 32, 32) * 255, ValueError, r"\[0, 1\]"),  # 0-255 pixels
        (torch.rand(1, 3, 16, 32, 32) - 0.5, ValueError, r"\[0, 1\]"),  # mean-subtracted
        ((torch.rand(1, 3, 16, 32, 32) * 255).to(torch.uint8), TypeError, "float"),
        ([[0.0]], TypeError, "torch.Tensor"),
    ],
)
def test_bad_input_fails_loudly(bad, err, match):
    model = build_model("c3d_small", 4).eval()
    with pytest.raises(err, match=match):
        model(bad)


def _fake_3d_resnets_state(net, drop_num_batches_tracked=True):
    """A 3D-ResNets-PyTorch style state: DataParallel 'module.' keys, random values."""
    g = torch.Generator().manual_seed(1)
    state = {}
    for k, v in net.state_dict().items():
        if drop_num_batches_tracked and k.endswith("num_batches_tracked"):
            continue  # pre-0.4 PyTorch checkpoints have none
        fake = torch.rand(v.shape, generator=g) + 0.5 if v.is_floating_point() else v.clone()
        state["module." + k] = fake
    return state


TINY = {"layers": (1, 1, 1, 1), "width": 16, "cardinality": 8}


def test_3d_resnets_checkpoint_loads_with_strict_keys(tmp_path):
    src = build_model("resnext3d", 11, **TINY)
    state = _fake_3d_resnets_state(src.net)
    path = tmp_path / "resnext-tiny-kinetics-hmdb51_split1.pth"
    torch.save({"epoch": 200, "arch": "resnext-101", "state_dict": state, "optimizer": {}}, path)

    model = build_model("resnext3d", 11, **TINY)
    load_3d_resnets_checkpoint(model, path, dataset="hmdb51")
    for k, v in model.net.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(v, state["module." + k]), k
    torch.testing.assert_close(model.mean.flatten(), torch.tensor(HARA_MEAN_255["hmdb51"]))
    assert model.scale == 255.0
    # an in-memory dict works too, and the loaded model runs on [0, 1] input
    load_3d_resnets_checkpoint(model.net, {"state_dict": state})
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 3, 16, 32, 32)).shape == (1, 11)


def test_3d_resnets_checkpoint_key_mismatch_fails_loudly(tmp_path):
    model = build_model("resnext3d", 11, **TINY)
    state = _fake_3d_resnets_state(model.net)
    renamed = dict(state)
    renamed["module.fc.weights"] = renamed.pop("module.fc.weight")  # one wrong key
    with pytest.raises(KeyError, match=r"missing \['fc.weight'\].*unexpected \['fc.weights'\]"):
        load_3d_resnets_checkpoint(model, {"state_dict": renamed})
    extra = dict(state, **{"module.layer5.0.conv1.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match="layer5"):
        load_3d_resnets_checkpoint(model, {"state_dict": extra})
    wrong_classes = build_model("resnext3d", 12, **TINY)
    with pytest.raises(ValueError, match="fc.weight"):
        load_3d_resnets_checkpoint(wrong_classes, {"state_dict": state})
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_3d_resnets_checkpoint(model, tmp_path / "nowhere.pth")
    with pytest.raises(ValueError, match="unknown dataset"):
        load_3d_resnets_checkpoint(model, {"state_dict": state}, dataset="kinetics700")


def test_c3d_keys_match_the_authors_resnext101_checkpoint_layout():
    """Key names and shapes of resnext-101-kinetics-ucf101_split1.pth (3D-ResNets-PyTorch)."""
    model = build_model("c3d", 101)
    own = model.net.state_dict()
    expected = {
        "conv1.weight": (64, 3, 7, 7, 7),
        "bn1.running_mean": (64,),
        "layer1.0.conv1.weight": (128, 64, 1, 1, 1),
        "layer1.0.conv2.weight": (128, 4, 3, 3, 3),
        "layer1.0.downsample.0.weight": (256, 64, 1, 1, 1),
        "layer2.0.downsample.1.running_var": (512,),
        "layer3.22.conv3.weight": (1024, 512, 1, 1, 1),
        "layer4.2.conv2.weight": (1024, 32, 3, 3, 3),
        "layer4.2.conv3.weight": (2048, 1024, 1, 1, 1),
        "fc.weight": (101, 2048),
        "fc.bias": (101,),
    }
    for k, shape in expected.items():
        assert tuple(own[k].shape) == shape, k
    state = {"module." + k: v for k, v in own.items() if not k.endswith("num_batches_tracked")}
    load_3d_resnets_checkpoint(model, {"arch": "resnext-101", "state_dict": state})


def test_local_pretrained_weights_load_and_keep_a_new_head(tmp_path):
    """torchvision Kinetics (400-way) and ImageNet state dicts load; the class head is new."""
    import torchvision

    kinetics = torchvision.models.video.mc3_18(weights=None)  # stands in for the downloaded file
    torch.save(kinetics.state_dict(), tmp_path / "mc3_18.pth")
    model = build_model("mc3_18", 12, weights_path=tmp_path / "mc3_18.pth")
    w = "stem.0.weight"
    assert torch.equal(model.net.state_dict()[w], kinetics.state_dict()[w])
    assert model.net.fc.out_features == 12 and model.spec["kwargs"] == {}

    imagenet = torchvision.models.resnet18(weights=None)
    torch.save(imagenet.state_dict(), tmp_path / "resnet18.pth")
    lrcn = build_model("lrcn", 12, backbone="resnet18", backbone_weights=tmp_path / "resnet18.pth")
    assert torch.equal(lrcn.net.cnn.conv1.weight, imagenet.conv1.weight)
    assert "backbone_weights" not in lrcn.spec["kwargs"]  # weights travel in the state dict
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        build_model("r3d_18", 12, weights_path=tmp_path / "missing.pth")


def test_top_k_gives_the_most_probable_classes_best_first():
    model = build_model("c3d_small", 5).eval()
    videos = torch.rand(3, 3, 16, 16, 16)
    probs, classes = top_k(model, videos, k=3, batch_size=2)
    with torch.no_grad():
        full = torch.softmax(model(videos), 1)
    assert probs.shape == classes.shape == (3, 3)
    assert torch.equal(classes[:, 0], full.argmax(1))
    assert torch.allclose(probs, full.gather(1, classes)) and (probs[:, :-1] >= probs[:, 1:]).all()
    with pytest.raises(ValueError, match="expected videos"):
        top_k(model, videos[0])
