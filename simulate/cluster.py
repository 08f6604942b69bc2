"""Where shards and scenario sweeps run: Dask distributed.

* ``IPSIM_DASK_SCHEDULER`` (``--cluster ADDRESS``): an existing Dask scheduler, e.g.
  ``tcp://10.0.0.5:8786``.  Its workers need ipsim installed (the same version).
* otherwise a ``LocalCluster`` sized to the machine: one single-threaded worker process
  per core (``IPSIM_DASK_WORKERS`` to change it), started only when there is work for
  it and closed when ipsim exits;
* ``--cluster none`` (``IPSIM_DASK_SCHEDULER=none``): everything in this process, one
  task after another.

The draws never depend on which of these ran a task: every task carries its own seed.
"""
from __future__ import annotations

import atexit
import os

_CLIENT = {}

# What shards and sweeps do when nothing is said: shard above models.sharding.SHARD_ABOVE
# series, on a LocalCluster.
SHARD_MODES = ("auto", "on", "off")


def shard_mode() -> str:
    mode = os.environ.get("IPSIM_SHARD", "auto") or "auto"
    if mode not in SHARD_MODES:
        raise ValueError(f"IPSIM_SHARD={mode!r}: expected one of {', '.join(SHARD_MODES)}")
    return mode


def scheduler_address() -> str:
    """``IPSIM_DASK_SCHEDULER`` as given: an address, "none", or "" (a local cluster)."""
    return (os.environ.get("IPSIM_DASK_SCHEDULER") or "").strip()


def in_process() -> bool:
    return scheduler_address().lower() == "none"


def get_client():
    """The Dask client for this process (created on first use), or None for in-process."""
    if in_process():
        return None
    address = scheduler_address()
    if "client" in _CLIENT:
        return _CLIENT["client"]
    import logging

    # distributed's own notices (ports, worker restarts) are not for a planner; errors
    # still reach the task's caller as exceptions
    logging.getLogger("distributed").setLevel(logging.ERROR)
    from dask.distributed import Client, LocalCluster

    if address:
        client = Client(address)
    else:
        workers = int(os.environ.get("IPSIM_DASK_WORKERS") or os.cpu_count() or 1)
        # one thread per worker: a fit's sampler threads are set to one per task, so the
        # workers are the parallelism; processes, because numba and the sampler hold
        # the GIL for long stretches
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=50)
        client = Client(cluster)
        _CLIENT["cluster"] = cluster
    _CLIENT["client"] = client
    atexit.register(close)
    return client


def close():
    client = _CLIENT.pop("client", None)
    cluster = _CLIENT.pop("cluster", None)
    for thing in (client, cluster):
        if thing is not None:
            try:
                thing.close()
            except Exception:  # noqa: BLE001 — shutting down: nothing left to report to
                pass


def run_tasks(fn, args_list, client=None):
    """``[fn(*args) for args in args_list]``, on the Dask cluster if a client is given."""
    if client is None:
        return [fn(*args) for args in args_list]
    futures = [client.submit(fn, *args, pure=False) for args in args_list]
    return client.gather(futures)
