"""``python -m hba_lib.serve --model c3d --budget 10000 --port 8000``: serve a model over HTTP.

Keys: ``--keys keys.json`` (one key per attacker, each with its own budget: key id -> SHA-256 of
the key and budget; ``python -m hba_lib.serve keys add keys.json alice --budget 5000`` makes
one), else ``--keys-file`` (``<id> <key>`` lines sharing ``--budget``), else ``$HBA_SERVE_KEY``,
else ``--key`` (visible to anyone who lists the machine's processes: prefer the others). The
server binds ``--host`` (default 127.0.0.1: this machine only) and ``--port`` (0: any free
port), with TLS when given ``--ssl-certfile`` and ``--ssl-keyfile``; the line ``hba serve:
listening on http(s)://HOST:PORT`` on stdout says where, once the model is loaded.
``docs/serve.md`` has the whole story.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import ipaddress
import logging
import math
import os
import socket
import sys
import time
from pathlib import Path

from hba_lib.oracle.remote import KEY_ENV
from hba_lib.serve.http_layer import LAYERS
from hba_lib.serve.service import (
    AuditLog,
    ModelService,
    add_key,
    key_id_of,
    read_keys_file,
    read_keys_json,
    revoke_key,
)
from hba_lib.serve.targets import load_target

MAX_BODY_BYTES = 2**28
"""The default ``--max-batch`` keeps a float32 request under this many bytes (256 MiB)."""
MALLOC_KEEP = 2**28
"""Bytes of freed memory glibc's malloc keeps for the next request (256 MiB): see
:func:`keep_freed_memory`."""


def keep_freed_memory(keep: int = MALLOC_KEEP) -> bool:
    """Tell glibc's malloc to keep freed memory for reuse instead of giving it back to the
    system at once: blocks up to 32 MiB come from the heap (not a fresh ``mmap`` each), and up to
    ``keep`` bytes freed at its top stay mapped. A request's body and its copies are then written
    into pages already there, not into new ones the kernel must fault in and clear (about 1,500
    faults a request of 16 float32 clips, several 2 MB pages each with transparent huge pages).
    The server's memory then stays near its peak. ``False`` where malloc is not glibc's."""
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 2**25) and mallopt(m_trim_threshold, keep))


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
    p.add_argument(
        "--keys",
        type=Path,
        default=None,
        help="keys.json: one key per attacker, each its own budget (see 'keys add')",
    )
    p.add_argument("--keys-file", type=Path, default=None,
                   help="'<id> <key>' per line, all sharing --budget")  # fmt: skip
    p.add_argument("--ssl-certfile", type=Path, default=None, help="TLS certificate (PEM)")
    p.add_argument("--ssl-keyfile", type=Path, default=None, help="TLS private key (PEM)")
    p.add_argument("--body-timeout", type=float, default=10.0,
                   help="seconds to wait for each piece of a body (408 after; default 10); "
                        "a whole body gets that plus 1 s a MB")  # fmt: skip
    p.add_argument(
        "--max-inflight-mb",
        type=float,
        default=1024.0,
        help="MB of bodies read or evaluated at once (503 past it; default 1024)",
    )
    p.add_argument(
        "--audit-fsync",
        action="store_true",
        help="sync each audit line to disk (survives a machine crash; slower)",
    )
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
    p.add_argument("--http", choices=LAYERS, default="auto",
                   help="uvicorn's HTTP layer: httptools (faster) or h11 (default auto: "
                        "httptools when installed); on uvloop when installed")  # fmt: skip
    return p.parse_args(argv)


def plain_http_warning(host: str, tls: bool) -> str | None:
    """The warning for a server on ``host``: ``None`` on a loopback address or with TLS."""
    if tls:
        return None
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: it may resolve to anything
        loopback = False
    if loopback:
        return None
    return (f"hba serve: WARNING: {host} may be reachable from other machines and there is no "
            "TLS (--ssl-certfile/--ssl-keyfile): keys and clips cross the network in the clear")  # fmt: skip


def _keys(args: argparse.Namespace) -> dict[str, object]:
    """The ``ModelService`` keyword arguments for the keys: ``accounts=`` or ``keys=``."""
    if args.keys is not None:
        if args.keys_file is not None or args.budget is not None:
            raise SystemExit("--keys gives each key its budget: no --keys-file or --budget with it")
        try:
            return {"accounts": read_keys_json(args.keys)}
        except (OSError, ValueError) as exc:
            raise SystemExit(f"hba serve: --keys {args.keys}: {exc}") from None
    if args.keys_file is not None:
        return {"keys": read_keys_file(args.keys_file), "budget": args.budget}
    key = os.environ.get(KEY_ENV) or args.key
    if not key:
        raise SystemExit(f"give an API key: --keys, --keys-file, ${KEY_ENV} or --key")
    return {"keys": {key_id_of(key): key}, "budget": args.budget}


def keys_main(argv: list[str]) -> int:
    """``python -m hba_lib.serve keys add|revoke|list FILE [ID] [--budget N]``: edit a --keys
    file. ``add`` prints the new key once (the file keeps its SHA-256 only)."""
    p = argparse.ArgumentParser(prog="python -m hba_lib.serve keys", description=keys_main.__doc__)
    p.add_argument("action", choices=("add", "revoke", "list"))
    p.add_argument("file", type=Path)
    p.add_argument("key_id", nargs="?")
    p.add_argument("--budget", type=int, default=None, help="clips (default: unlimited)")
    args = p.parse_args(argv)
    try:
        if args.action == "list":
            for kid, (_, budget) in read_keys_json(args.file).items():
                print(kid, "unlimited" if budget is None else budget)
            return 0
        if not args.key_id:
            p.error(f"{args.action} needs a key id")
        if args.action == "add":
            print(add_key(args.file, args.key_id, args.budget))
        else:
            revoke_key(args.file, args.key_id)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"hba serve keys: {exc}") from None
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["keys"]:
        return keys_main(argv[1:])
    args = parse_args(argv)
    if (args.ssl_certfile is None) != (args.ssl_keyfile is None):
        raise SystemExit("give both --ssl-certfile and --ssl-keyfile, or neither")
    import torch
    import uvicorn

    from hba_lib import paths
    from hba_lib.serve import http_layer
    from hba_lib.serve.app import HttpLayerAudit, Limits, create_app

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    keep_freed_memory()
    keys = _keys(args)
    try:
        layer = http_layer.resolve(args.http)
    except ValueError as exc:
        raise SystemExit(f"hba serve: {exc}") from None
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
    audit = AuditLog(
        args.audit_log or paths.RUNS / "serve" / f"audit-{stamp}-{os.getpid()}.jsonl",
        fsync=args.audit_fsync,
    )
    service = ModelService(
        model, name=args.name or args.model, clip_shape=clip, audit=audit,
        probs=not args.labels_only, max_batch=max_batch, device=args.device, **keys,  # type: ignore[arg-type]
    )  # fmt: skip
    limits = Limits(body_timeout=args.body_timeout,
                    max_inflight_bytes=int(args.max_inflight_mb * 2**20))  # fmt: skip
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it a keep-alive answer waits out the client's delayed ACK (40 ms a request)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(2048)  # connections wait in the backlog until uvicorn takes them: no refusals
    host, port = sock.getsockname()[:2]
    tls = args.ssl_certfile is not None
    warning = plain_http_warning(args.host, tls)
    if warning:
        print(warning, file=sys.stderr)
    if args.keys is not None:
        budget = "one per key"
    else:
        budget = "unlimited" if args.budget is None else f"{args.budget:,} clips"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    print(f"hba serve: {service.name}, clips {list(clip)}, budget {budget}, keys "
          f"{list(service.used())}, audit log {audit.path}, HTTP {layer} on {loop}")  # fmt: skip
    url_host = f"[{host}]" if ":" in host else host
    scheme = "https" if tls else "http"
    config = uvicorn.Config(
        create_app(service, limits), log_level="warning", access_log=False,
        http=http_layer.protocol(layer), loop=loop,
        ssl_certfile=str(args.ssl_certfile) if tls else None,
        ssl_keyfile=str(args.ssl_keyfile) if tls else None,
    )  # fmt: skip
    # uvicorn configured its loggers above; what its HTTP layer refuses goes to the audit log too
    logging.getLogger("uvicorn.error").addHandler(HttpLayerAudit(audit))
    print(f"hba serve: listening on {scheme}://{url_host}:{port}", flush=True)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        audit.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
