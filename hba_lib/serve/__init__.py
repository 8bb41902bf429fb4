"""A model server: the black box behind HTTP, for attacks on a model only reachable over the
network (``python -m hba_lib.serve``; the optional extra ``serve``: FastAPI on uvicorn).

The server owns the model and everything about it: it answers a batch of clips with the top-1
label (and, unless ``--labels-only``, its probability), counts every clip and enforces the
budget itself (one per key with ``--keys``), requires an API key, refuses malformed requests
with a 4xx and a message, and logs every request to a JSON-lines audit log, written ahead of
the model (optionally over TLS). Its client is
:class:`hba_lib.oracle.remote.RemoteOracle`, an :class:`~hba_lib.oracle.Oracle`, so every
attack runs against a served model unchanged.

- :mod:`hba_lib.serve.service`: keys and accounts, checks, the count, deduplication (no web
  stack);
- :mod:`hba_lib.serve.audit`: the audit log and :func:`~hba_lib.serve.audit.summarize`, which
  sums one (crashed or not);
- :mod:`hba_lib.serve.app`: the FastAPI routes (``POST /classify``, ``GET /status``);
- :mod:`hba_lib.serve.targets`: the served model from a ``--model`` spec;
- :mod:`hba_lib.serve.__main__`: the command line.

What the server guarantees and what it does not: ``docs/serve.md``.
"""
