"""``python -m hba_lib.serve --model c3d --budget 10000 --port 8000``: serve a model over HTTP.

The key comes from ``--keys-file`` (``<id> <key>`` lines), else ``$HBA_SERVE_KEY``, else
``--key`` (visible to anyone who lists the machine's processes: prefer the other two). The
server binds ``--host`` (default 127.0.0.1: this machine only) and ``--port`` (0: any free
port); the line ``hba serve: listening on http://HOST:PORT`` on stdout says where, once the
model is loaded. ``docs/serve.md`` has the whole story.
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import sys
import time
from pathlib import Path

from hba_lib.oracle.remote import KEY_ENV
from hba_lib.serve.service import AuditLog, ModelService, key_id_of, read_keys_file
from hba_lib.serve.targets import load_target

MAX_BODY_BYTES = 2**28
"""The default ``--max-batch`` keeps a float32 request under this many bytes (256 MiB)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m hba_lib.serve", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("--model", default="c3d",
                   help="c3d | lrcn (the committed checkpoints), movinet_a0, a .pt checkpoint "
                        "or module:function (default c3d)")  # fmt: skip
    p.add_argument("--budget", type=int, default=None, help="clips in all (default: unlimited)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0: any free port")
    p.add_argument("--key", default=None, help=f"the API key (prefer ${KEY_ENV} or --keys-file)")
    p.add_argument("--keys-file", type=Path, default=None, help="'<id> <key>' per line")
    p.add_argument("--labels-only", action="store_true",
                   help="answer the top-1 label only, not its probability")  # fmt: skip
    p.add_argument("--max-batch", type=int, default=None,
                   help="clips per request (default: 256, fewer where 256 float32 clips "
                        "pass 256 MiB)")  # fmt: skip
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="frame size of the clips (default: the model's)")  # fmt: skip
    p.add_argument("--frames", type=int, default=16, help="frames per clip (default 16)")
    p.add_argument("--audit-log", type=Path, default=None,
                   help="JSON-lines audit log (default runs/serve/audit-<time>.jsonl)")  # fmt: skip
    p.add_argument("--name", default=None, help="the model's name in /status (default --model)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default="cpu")
    return p.parse_args(argv)


def _keys(args: argparse.Namespace) -> dict[str, str]:
    if args.keys_file is not None:
        return read_keys_file(args.keys_file)
    key = os.environ.get(KEY_ENV) or args.key
    if not key:
        raise SystemExit(f"give an API key: --keys-file, ${KEY_ENV} or --key")
    return {key_id_of(key): key}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    import uvicorn

    from hba_lib import paths
    from hba_lib.serve.app import create_app

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    keys = _keys(args)
    try:
        model, size = load_target(args.model, args.device)
    except (ValueError, OSError, ImportError) as exc:  # unknown spec, missing file or runtime
        raise SystemExit(f"hba serve: cannot load --model {args.model}: {exc}") from None
    size = tuple(args.size) if args.size is not None else size
    if size is None:
        raise SystemExit(f"give --size H W: the frame size {args.model} takes is not known")
    clip = (3, args.frames, *size)
    clip_bytes = 4 * math.prod(clip)  # float32, the largest wire dtype
    max_batch = args.max_batch or max(1, min(256, MAX_BODY_BYTES // clip_bytes))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    audit = AuditLog(args.audit_log or paths.RUNS / "serve" / f"audit-{stamp}-{os.getpid()}.jsonl")
    service = ModelService(
        model, name=args.name or args.model, clip_shape=clip, budget=args.budget, keys=keys,
        audit=audit, probs=not args.labels_only, max_batch=max_batch, device=args.device,
    )  # fmt: skip
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it a keep-alive answer waits out the client's delayed ACK (40 ms a request)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(2048)  # connections wait in the backlog until uvicorn takes them: no refusals
    host, port = sock.getsockname()[:2]
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"hba serve: WARNING: {args.host} is reachable from other machines and there is no "
              "TLS: keys and clips cross the network in the clear", file=sys.stderr)  # fmt: skip
    budget = "unlimited" if args.budget is None else f"{args.budget:,} clips"
    print(f"hba serve: {service.name}, clips {list(clip)}, budget {budget}, keys "
          f"{list(keys)}, audit log {audit.path}")  # fmt: skip
    url_host = f"[{host}]" if ":" in host else host
    print(f"hba serve: listening on http://{url_host}:{port}", flush=True)
    config = uvicorn.Config(create_app(service), log_level="warning", access_log=False)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        audit.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
