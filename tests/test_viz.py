"""Figures: where they are saved, and that each viz function draws what it says."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from hba_lib import paths, viz


def test_savefig_goes_to_the_runs_folder_unless_asked(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.FIGURES_DIR_ENV, raising=False)
    assert paths.output_dir().is_relative_to(paths.RUNS) and not paths.writes_committed_figures()
    monkeypatch.setenv(paths.FIGURES_DIR_ENV, str(tmp_path))
    fig = plt.figure()
    out = viz.savefig(fig, "00_test")
    viz.show(fig, "00_shown")  # outside a notebook: saved, closed, nothing displayed
    assert out == tmp_path / "00_test.png" and out.exists() and (tmp_path / "00_shown.png").exists()
    assert not plt.fignum_exists(fig.number)
    monkeypatch.setenv(paths.FIGURES_DIR_ENV, "figures")
    assert paths.output_dir() == paths.FIGURES and paths.writes_committed_figures()


def _result(n):
    trace = [SimpleNamespace(queries=q, distance=20.0 / (1 + q / 500), map=15.0 / (1 + q / 500))
             for q in range(50, n, 100)]  # fmt: skip
    return SimpleNamespace(trace=trace, success=True, attacked=True, queries=n,  # as AttackResult:
                           map=trace[-1].map, distance=trace[-1].distance)  # fmt: skip


def test_attack_figures_have_labels_and_plain_log_ticks():
    fig = viz.distance_vs_queries([_result(2000), _result(1000)], ["a", "b"], "title")
    fig.canvas.draw()
    ax0, ax1 = fig.axes[:2]
    assert ax0.get_ylabel().startswith("L2") and ax1.get_ylabel().startswith("MAP")
    labels = [t.get_text() for t in ax0.get_yticklabels(minor=True) + ax0.get_yticklabels()]
    assert any(labels) and not any("times" in s or "^" in s for s in labels), labels
    plt.close(fig)
    fig = viz.success_vs_queries([_result(2000)], 2000, "t")
    assert fig.axes[0].get_ylabel() == "videos fooled (%)"
    plt.close(fig)
    fig = viz.g_theta_search([0, 1, 2], [0.9, 0.6, 0.8], [False, False, True], [(2.0, True), (1.0, False)],
                             1.5, "goal")  # fmt: skip
    assert "2 points" in fig.axes[0].get_title()
    plt.close(fig)


def test_data_figures():
    ds = SimpleNamespace(classes=["a", "b", "c"], labels=np.array([0, 1, 2, 0, 1, 2]),
                         videos=np.random.default_rng(0).integers(0, 255, (6, 16, 16, 16, 3), np.uint8))  # fmt: skip
    fig = viz.class_balance({"train": ds, "test": ds})
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["train", "test"]
    plt.close(fig)
    fig = viz.one_frame_is_not_enough(ds)
    assert "a" in [t.get_text() for t in fig.texts + [x for a in fig.axes for x in a.texts]]
    plt.close(fig)
    fig = viz.class_strip(ds)
    assert len(fig.axes) == 3 * 16
    plt.close(fig)
    assert viz.tile_videos([ds.videos[0]] * 3, cols=2).shape == (16, 32, 32, 3)


def test_history_draws_highlighted_runs_on_top():
    hist = [{"epoch": e, "train_loss": 1 / e, "train_acc": 0.5, "test_acc": 0.4} for e in (1, 2)]
    fig = viz.plot_history({"mine": hist, "other": hist}, highlight=["mine"])
    lines = fig.axes[0].get_lines()
    assert lines[-1].get_label() == "mine" and lines[-1].get_zorder() > lines[0].get_zorder()
    plt.close(fig)


def test_frame_strip_title_above_frame_numbers():
    fig = viz.frame_strip([torch.rand(3, 4, 8, 8)], row_labels=["x"], title="a title")
    fig.canvas.draw()
    title = fig._suptitle.get_window_extent()
    numbers = fig.axes[0].title.get_window_extent()
    assert title.y0 >= numbers.y1, "the title must not overlap the frame numbers"
    plt.close(fig)


def test_as_frames_refuses_bad_shapes():
    with pytest.raises(ValueError, match="expected"):
        viz.as_frames(np.zeros((4, 4)))


def test_real_clip_figures_label_what_the_model_said():
    clips = [torch.rand(3, 4, 8, 8) for _ in range(5)]
    fig = viz.clip_grid(clips, [f"clip {i}: a long class name, p 0.9" for i in range(5)], cols=3)
    assert len(fig.axes) == 6 and "clip 4" in fig.axes[4].texts[0].get_text()
    plt.close(fig)
    with pytest.raises(ValueError, match="captions"):
        viz.clip_grid(clips, ["one"])
    x = torch.rand(3, 4, 8, 8)
    fig = viz.adversarial_strip(x, (x + 0.01).clamp(0, 1), [0, 3], "yoga (0.49)", "contorting (0.30)",
                                "t")  # fmt: skip
    labels = [ax.get_ylabel() for ax in fig.axes[::2]]
    assert labels[0].startswith("clean\nyoga") and labels[2].startswith("adversarial\ncontorting")
    assert labels[1].startswith("perturbation")
    plt.close(fig)


def test_notebook_10_figures():
    x = torch.rand(3, 4, 8, 8)
    u = {"full": torch.randn(3, 4, 8, 8), "resize:4": torch.randn(3, 4, 8, 8)}
    fig = viz.probe_directions({"whole video": (x, u), "masked": (x * 0.5, u)}, 2, "probes")
    assert len(fig.axes) == 2 * 3 and fig.axes[1].get_title() == "full"
    assert fig.axes[0].get_title() == "frame t=2"
    plt.close(fig)
    edge = torch.rand(4, 8, 8)
    fig = viz.edge_prior_panels(x, edge, u, 2, "edge prior")
    assert [ax.get_title() for ax in fig.axes] == ["frame t=2", "edge map e", "full", "resize:4"]
    assert np.allclose(fig.axes[1].get_images()[0].get_array(), edge[2].numpy())  # frame t=2
    plt.close(fig)
    colour = torch.rand(4, 8, 8)
    fig = viz.edge_maps_panels(x, {"luminance": edge, "colour": colour}, 1, "edge maps")
    assert [ax.get_title() for ax in fig.axes] == ["frame t=1", "luminance", "colour"]
    assert np.allclose(fig.axes[2].get_images()[0].get_array(), colour[1].numpy())  # its frame
    plt.close(fig)
    fig = viz.boundary_step_sketch(seed=0)
    title = fig.axes[0].get_title()  # "... ||x_b - x|| = a -> b (closest c)": the step got closer
    a, b = (float(s) for s in title.split("= ")[1].split(" (")[0].split(" -> "))
    closest = float(title.split("closest ")[1].rstrip(")"))
    assert closest <= b < a
    plt.close(fig)
    pts = {"a": (np.array([1.0, 2.0]), np.array([1.2, 2.5]))}
    fig = viz.l2_against_map_bound(pts, "t")
    assert fig.axes[0].get_ylabel().startswith("measured L2")
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()][-1] == "a"
    plt.close(fig)
