"""MoViNet-A0-Stream (Kinetics-600, int8 TFLite) as a target: where its files are, how to fetch
them with a checksum check, and the model (``build_model("movinet_a0")``).

The files (``movinet_int8.tflite``, 3.3 MB, and ``kinetics600_label_map.txt``) are looked for,
in order: an explicit ``path`` (the ``.tflite`` file or its folder), the environment variable
``HBA_MOVINET`` (likewise), ``../shared/models/movinet_a0_stream_int8_k600/`` and the download
folder ``.cache/models/movinet_a0_stream_int8_k600/`` (``HBA_CACHE`` moves it). The label map
is read from beside the model file.

**Where the publisher distributes it.** Google publishes MoViNet-A0-Stream for on-device use on
TensorFlow Hub (now Kaggle Models), ``lite-model/movinet/a0/stream/kinetics-600/classification/
tflite/int8`` (Apache-2.0; :data:`PUBLISHER_URL`), and ships the same model with its label map in
TensorFlow's Flutter example app. :func:`fetch_movinet` downloads the files from that example at
a pinned commit (:data:`MOVINET_A0_FILES`: the exact bytes in ``../shared``, with their sizes
and sha256), resuming an interrupted download and deleting a file whose checksum is wrong::

    python -m hba_lib.models.movinet            # fetch into .cache/models/..., verify, say where

A file fetched from the hub instead may carry other metadata bytes (it was not compared byte for
byte): ``fetch_movinet(source=...)`` with your own ``files`` and checksums, or ``HBA_MOVINET``.
"""

from __future__ import annotations

import os
from pathlib import Path

from hba_lib import paths
from hba_lib.data.download import RemoteFile, download_all, verify_file
from hba_lib.models.tflite import ModelFileMissingError, TFLiteVideoClassifier

ENV = "HBA_MOVINET"
FOLDER = "movinet_a0_stream_int8_k600"
MODEL_FILE = "movinet_int8.tflite"
LABELS_FILE = "kinetics600_label_map.txt"
NUM_CLASSES = 600
SIZE = 172

PUBLISHER_URL = (
    "https://tfhub.dev/tensorflow/lite-model/movinet/a0/stream/kinetics-600/classification/"
    "tflite/int8/1?lite-format=tflite"
)
"""The publisher's page for the model (TensorFlow Hub, redirected to Kaggle Models)."""

SOURCE = (
    "https://raw.githubusercontent.com/tensorflow/flutter-tflite/"
    "7045e30722790910e5735b43d3f7e18a25008e6b/example/movinet/assets/"
)
"""TensorFlow's Flutter example app at a pinned commit: the model and label map, as released."""

MOVINET_A0_FILES = (
    RemoteFile(
        MODEL_FILE,
        "movinet_int8.tflite",
        size=3_276_048,
        sha256="6125b36e2485eeb5cc1fd6206cf5e5d70235593fbc84610d1dce97fe3aa9c2ac",
    ),
    RemoteFile(
        LABELS_FILE,
        "label/kinetics600_label_map.txt",
        size=9_209,
        sha256="8dfca4202520ea8291ce0242ef33b006d0a0772b409663c090a2876bc1978dcf",
    ),
)
"""The files: name, path under :data:`SOURCE`, size and sha256 (``../shared``'s SOURCES.txt)."""


def download_folder() -> Path:
    """Where :func:`fetch_movinet` puts the files by default (under ``paths.CACHE``)."""
    return paths.CACHE / "models" / FOLDER


def search_paths(path: str | os.PathLike | None = None) -> list[Path]:
    """The places looked at, in order (module docstring)."""
    found = [Path(path).expanduser()] if path is not None else []
    if os.environ.get(ENV, "").strip():
        found.append(Path(os.environ[ENV].strip()).expanduser())
    found += [paths.SHARED / "models" / FOLDER, download_folder()]
    return found


def locate_movinet(path: str | os.PathLike | None = None) -> Path:
    """The MoViNet-A0 ``.tflite`` file: ``path`` when given (the file or its folder; only it is
    looked at), else the first of ``HBA_MOVINET``, ``../shared/models``, the download folder.
    Raises :class:`~hba_lib.models.tflite.ModelFileMissingError` naming where it looked and how
    to get the file."""
    places = search_paths(path)[:1] if path is not None else search_paths()
    for place in places:
        candidate = place / MODEL_FILE if place.is_dir() else place
        if candidate.is_file():
            return candidate
    looked = "\n".join(f"  - {p}" for p in places)
    raise ModelFileMissingError(
        f"MoViNet-A0 model file {MODEL_FILE} not found; looked at:\n{looked}\n"
        f"Get it with `python -m hba_lib.models.movinet` (downloads {MODEL_FILE} and "
        f"{LABELS_FILE} into {download_folder()} and checks their sha256), or set {ENV} to the "
        f"file or its folder (publisher: {PUBLISHER_URL})"
    )


def missing(path: str | os.PathLike | None = None) -> list[str]:
    """What :func:`movinet_a0` still needs here, each item saying how to get it: the LiteRT
    runtime, the model file, its label map (empty: ready). Nothing is loaded."""
    from hba_lib.models.tflite import RUNTIME_HINT, runtime_available

    needs = [] if runtime_available() else [f"the TFLite runtime: {RUNTIME_HINT}"]
    try:
        model_path = locate_movinet(path)
    except ModelFileMissingError as exc:
        return needs + [f"the model file: {exc}"]
    if not (model_path.parent / LABELS_FILE).is_file():
        needs.append(
            f"the label map {LABELS_FILE} beside {model_path}: `python -m hba_lib.models.movinet` "
            "fetches it with the model"
        )
    return needs


def fetch_movinet(
    folder: str | os.PathLike | None = None,
    source: str = SOURCE,
    files: tuple[RemoteFile, ...] = MOVINET_A0_FILES,
    progress: bool = True,
    **kw,
) -> Path:
    """Download the model and its label map into ``folder`` (default :func:`download_folder`),
    resuming, checking each size and sha256; return the model file's path. ``source``: the URL
    prefix the files' paths are read from (a mirror, or a local server in tests). Files already
    there that verify are kept without a request."""
    folder = Path(folder) if folder is not None else download_folder()
    base = source if source.endswith("/") else source + "/"
    remote = tuple(
        RemoteFile(f.name, base + f.url, f.size, f.md5, f.sha256) for f in files
    )  # fmt: skip
    download_all(remote, folder, progress=progress, **kw)
    return folder / files[0].name


def movinet_a0(
    path: str | os.PathLike | None = None,
    *,
    labels: str | os.PathLike | None = None,
    verify: bool = False,
    **kw,
) -> TFLiteVideoClassifier:
    """MoViNet-A0-Stream (Kinetics-600): ``[B, 3, 16, H, W]`` in [0, 1] -> ``[B, 600]`` logits,
    frames resized to 172 x 172 inside. ``path``: the file or folder (else found as
    :func:`locate_movinet` says); ``labels``: the label map (default: beside the model);
    ``verify``: check the file's sha256 first; other options go to
    :class:`~hba_lib.models.tflite.TFLiteVideoClassifier` (``workers``, ``num_frames``)."""
    model_path = locate_movinet(path)
    if verify:
        verify_file(model_path, size=MOVINET_A0_FILES[0].size, sha256=MOVINET_A0_FILES[0].sha256)
    labels_path = Path(labels) if labels is not None else model_path.parent / LABELS_FILE
    if not labels_path.is_file():
        raise ModelFileMissingError(
            f"label map {labels_path} not found beside {model_path.name}; "
            f"`python -m hba_lib.models.movinet` fetches both files, or pass labels="
        )
    model = TFLiteVideoClassifier(model_path, labels_path, **kw)
    if model.signature.kind != "stream" or model.signature.num_classes != NUM_CLASSES:
        raise ValueError(
            f"{model_path} is not MoViNet-A0-Stream for Kinetics-600: a {model.signature.kind} "
            f"model with {model.signature.num_classes} classes"
        )
    model.spec = {"name": "movinet_a0", "num_classes": NUM_CLASSES, "kwargs": {}}
    return model


def main(argv: list[str] | None = None) -> int:
    """``python -m hba_lib.models.movinet [--folder F] [--source URL]``: fetch and verify."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--folder", default=None, help=f"default: {download_folder()}")
    p.add_argument("--source", default=SOURCE, help="URL prefix of the files")
    args = p.parse_args(argv)
    model_path = fetch_movinet(args.folder, args.source)
    print(f"{model_path} (sha256 verified); use it with build_model('movinet_a0') or {ENV}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
