"""Independent jobs (the points of a sweep, the runs of an experiment) on local processes or
on a Ray cluster, with one interface: ``run_all`` yields each job's result as it finishes.

Locally the jobs run in a process pool. With ``ray`` (an address such as ``auto`` or
``10.0.0.5:6379``) each job becomes a Ray task with its CPU and memory request, placed by
Ray's scheduler; the results stream back in the order they finish, as locally. Ray is an
optional dependency (``pip install 'bnncore[cluster]'``). The tasks read and write the paths
they are given, so on a cluster of several machines those paths must be on a file system
that every node mounts at the same place, and every node needs bnncore installed.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import socket
import threading
from concurrent.futures import ProcessPoolExecutor, as_completed

from .errors import SetupError

__all__ = ["run_all", "ray_available"]

RAY_INSTALL = "pip install 'bnncore[cluster]' (Ray), or `make setup`, which installs it"


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def run_all(fn, jobs_args: list, *, workers: int, ray: str | None = None, cpus: float = 1,
            memory_mib: int | None = None, fresh_process: bool = False):
    """Run ``fn(*args)`` for every ``args`` of ``jobs_args``; yield ``(index, result)`` as each
    finishes. ``workers``: local processes at once. ``ray``: the cluster's address (None: run
    locally); ``cpus``, ``memory_mib``: what each task asks Ray for. ``fresh_process``: a new
    process per job (spawned locally, Ray's ``max_calls=1``), for jobs that set per-process
    state such as torch's thread count."""
    if ray is None:
        kw = {"mp_context": multiprocessing.get_context("spawn"), "max_tasks_per_child": 1} if fresh_process else {}
        with ProcessPoolExecutor(max(1, workers), **kw) as pool:
            futures = {pool.submit(fn, *args): k for k, args in enumerate(jobs_args)}
            for f in as_completed(futures):
                yield futures[f], f.result()
        return
    yield from _run_on_ray(fn, jobs_args, ray, cpus, memory_mib, fresh_process)


#: how long connecting to a Ray cluster may take, seconds
CONNECT_SECONDS = 30


def _probe(address: str):
    """Refuse at once a ``host:port`` where nothing listens (Ray itself retries for minutes)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or address.startswith(("ray://", "auto")):
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=min(10, CONNECT_SECONDS)).close()
    except (OSError, ValueError, OverflowError) as e:
        raise SetupError(f"--ray {address}: nothing answers there ({e}); start a cluster with `ray start --head` "
                           "and give the address it prints, or auto") from None


@contextlib.contextmanager
def _deadline(seconds: int, message: str):
    """Raise TimeoutError(message) in the block after ``seconds`` (main thread only; elsewhere
    the block runs unbounded)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    def fire(signum, frame):
        raise TimeoutError(message)
    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _run_on_ray(fn, jobs_args, address: str, cpus: float, memory_mib, fresh_process: bool):
    try:
        import ray
    except ImportError:
        raise SetupError(f"--ray needs Ray: {RAY_INSTALL}") from None
    started = not ray.is_initialized()
    if started:
        _probe(address)
        try:
            with _deadline(CONNECT_SECONDS, f"--ray {address}: no Ray cluster answered within {CONNECT_SECONDS} s"):
                ray.init(address=address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError, TimeoutError) as e:
            raise SetupError(f"--ray {address}: cannot connect to a Ray cluster ({e}); start one with "
                               "`ray start --head` or give its address") from None
    try:
        options = {"num_cpus": cpus, "max_retries": 0}
        if memory_mib:
            options["memory"] = int(memory_mib) * 2**20
        if fresh_process:
            options["max_calls"] = 1
        task = ray.remote(**options)(fn)
        pending = {task.remote(*args): k for k, args in enumerate(jobs_args)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            k = pending.pop(done[0])
            yield k, ray.get(done[0])
    finally:
        if started:
            ray.shutdown()
