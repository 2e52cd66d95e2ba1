"""Where predictions run: in this process, or on Dask workers.

Both executors run the same :func:`predict_batch` (read windows → scale → predictor) and yield
results **in submission order**, so the main process — the only one that writes — blends and
writes exactly as a single-process run would: results are identical for any worker count.
At most ``prefetch`` batches are in flight, so memory stays bounded however large the scene.

On Dask the predictor is pickled once and broadcast to the workers (it must be picklable and
importable by name on the workers); workers read their own windows from the scene's resolved
GDAL path (:attr:`ReadPlan.path <damagemap.geo.raster.ReadPlan>`: a local path must exist at the
same path on every worker; a URL — also a STAC item's asset href — is read by each worker
itself). As with any multiprocessing code, a script that calls ``map_scene(..., workers=N)``
needs an ``if __name__ == "__main__":`` guard (worker processes are spawned and re-import the
main module).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from damagemap.errors import ConfigError
from damagemap.geo.raster import ReadPlan, read_tiles
from damagemap.mapping.spec import on_accelerator


@dataclass
class BatchResult:
    """Predictions for one batch.

    ``probs [n_data, K, T, T]`` for the tiles that have any valid pixel (``has_data``), and the
    validity masks ``valid [B, T, T]`` of all tiles.
    """

    probs: np.ndarray
    has_data: np.ndarray
    valid: np.ndarray


def match_threads(threads: int | None) -> None:
    """Run torch with ``threads`` intra-op threads in this process (if torch is loaded).

    CPU kernels split their reductions by thread count, so the last bit of a probability can
    depend on it: a Dask worker (which Dask starts with one thread) uses the main process's count.
    """
    torch = sys.modules.get("torch")
    if threads and torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def main_threads() -> int | None:
    """This process's torch thread count (None when torch is not loaded)."""
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else None


def predict_batch(
    plan: ReadPlan,
    predictor: Callable[[np.ndarray], np.ndarray],
    origins: list[tuple[int, int]],
    size: int,
    k: int,
    threads: int | None = None,
) -> BatchResult:
    """Read the tiles at ``origins`` and predict those with data; all-nodata tiles are skipped.

    ``threads``: torch threads to predict with (see :func:`match_threads`).
    """
    match_threads(threads)
    x, valid = read_tiles(plan, origins, size)
    return predict_read(predictor, x, valid, size, k)


def predict_read(
    predictor: Callable[[np.ndarray], np.ndarray], x: np.ndarray, valid: np.ndarray, size: int, k: int
) -> BatchResult:
    """Predict the tiles of a read batch ``x [B, C, T, T]`` that have data (see :func:`predict_batch`)."""
    # axis 1 of a 2-D array: always an array (numpy's stubs also allow a scalar np.bool)
    has_data = cast(np.ndarray, valid.reshape(len(x), -1).any(axis=1))
    if not has_data.any():
        return BatchResult(np.zeros((0, k, size, size), np.float32), has_data, valid)
    batch = x if has_data.all() else x[has_data]  # the usual case needs no copy
    probs = np.asarray(predictor(np.ascontiguousarray(batch)))
    expected = (int(has_data.sum()), k, size, size)
    if probs.shape != expected:
        raise ConfigError(
            f"predictor {type(predictor).__name__} returned shape {probs.shape}, expected {expected} "
            "([B, num_outputs, T, T])"
        )
    probs = probs.astype(np.float32, copy=False)
    if not np.isfinite(probs).all():
        raise ConfigError(f"predictor {type(predictor).__name__} returned NaN or infinite probabilities")
    return BatchResult(probs, has_data, valid)


def lower_thread_priority() -> None:
    """Give the calling thread the lowest CPU priority (nice 19; Linux only, where nice is per thread).

    The scheduler then runs it only on a core the model's threads leave idle, so reading ahead
    no longer stalls torch's threads at their barriers. Elsewhere ``setpriority`` would apply to
    a whole process, so it is left alone.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):  # not permitted here: the reader keeps its priority
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class LocalExecutor:
    """Run batches in this process, reading ahead of the model.

    A reader thread reads the next ``prefetch`` batches' windows (GDAL releases the GIL, and a
    remote scene's latency is hidden) while the model runs; on the CPU at the lowest priority
    (:func:`lower_thread_priority`). Where the model runs depends on its
    device (the predictor's ``device`` attribute, CPU when it has none):

    * **CPU**: in the calling thread, between the caller's blending and writing. torch already
      spreads one call over every core; CPU work beside it (blending, compression) takes a core
      from it and stalls the other torch threads at their barriers, so overlapping costs more
      than it saves (on 2 cores the threaded variant was measured slower).
    * **accelerator** (``cuda``, ``mps``, …): in a thread behind the caller, so the CPU blends
      and writes batch N-1 while the device computes batch N.

    Each batch is read and predicted exactly as in a sequential run, and results come back in
    submission order, so the outputs are the same bytes either way.
    """

    workers = 0

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor
        self.model_thread = on_accelerator(predictor)

    def map(self, jobs: Iterable[tuple[Any, ...]], prefetch: int = 2) -> Iterator[BatchResult]:
        """Predict each job, at most ``prefetch`` batches read ahead; results in submission order."""
        from concurrent.futures import Future, ThreadPoolExecutor
        from contextlib import ExitStack

        def predict(read: Future, size: int, k: int) -> BatchResult:
            x, valid = read.result()
            return predict_read(self.predictor, x, valid, size, k)

        # per batch: its read, its prediction when a model thread runs it (else None), size, k
        pending: deque[tuple[Future, Future | None, int, int]] = deque()

        def result(read: Future, predicted: Future | None, size: int, k: int) -> BatchResult:
            return predicted.result() if predicted is not None else predict(read, size, k)

        with ExitStack() as threads:
            # on the CPU the reader yields to the model: it runs in the gaps (blending, writing)
            background = None if self.model_thread else lower_thread_priority
            reader = threads.enter_context(ThreadPoolExecutor(1, "damagemap-read", initializer=background))
            model = threads.enter_context(ThreadPoolExecutor(1, "damagemap-predict")) if self.model_thread else None
            try:
                for plan, origins, size, k in jobs:
                    read = reader.submit(read_tiles, plan, origins, size)
                    pending.append((read, model.submit(predict, read, size, k) if model else None, size, k))
                    if len(pending) > prefetch:
                        yield result(*pending.popleft())
                while pending:
                    yield result(*pending.popleft())
            finally:
                for read, predicted, _, _ in pending:
                    read.cancel()
                    if predicted is not None:
                        predicted.cancel()

    def close(self) -> None:
        """Nothing to release in process (the threads end with each :meth:`map`)."""
        pass


class DaskExecutor:
    """Run batches on a Dask cluster: a new LocalCluster (``workers=N``) or ``scheduler``."""

    def __init__(
        self,
        predictor: Any,
        workers: int = 0,
        scheduler: str | None = None,
        timeout: float = 30.0,
        dashboard: bool = False,
    ) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - dask is a declared dependency
            raise ConfigError("workers/scheduler need dask[distributed] installed") from exc
        self._cluster = None
        self.threads = main_threads()
        if scheduler:
            try:
                self.client = Client(scheduler, timeout=timeout)
            except (OSError, TimeoutError) as exc:
                raise ConfigError(
                    f"--scheduler {scheduler}: no Dask scheduler answered within {timeout:g} s "
                    f"(--scheduler-timeout to wait longer): {type(exc).__name__}"
                ) from None
        else:
            self._cluster = LocalCluster(**local_cluster_options(workers, dashboard))
            self.client = Client(self._cluster)
            stop_http_servers(self.client, scheduler=not dashboard)
        try:
            self._predictor = self.client.scatter(predictor, broadcast=True, hash=False)
        except Exception as exc:
            self.close()
            raise ConfigError(
                f"predictor {type(predictor).__name__} must be picklable to run on Dask workers: {exc}"
            ) from exc
        self.workers = len(self.client.scheduler_info().get("workers", {})) or max(workers, 1)

    def map(self, jobs: Iterable[tuple[Any, ...]], prefetch: int | None = None) -> Iterator[BatchResult]:
        """Predict jobs on the cluster with at most ``prefetch`` in flight; results in submission order."""
        limit = prefetch or 2 * self.workers + 1
        pending: deque = deque()
        it = iter(jobs)
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < limit:
                    try:
                        plan, origins, size, k = next(it)
                    except StopIteration:
                        exhausted = True
                        break
                    pending.append(
                        self.client.submit(
                            predict_batch, plan, self._predictor, origins, size, k, self.threads, pure=False
                        )
                    )
                if not pending:
                    return
                future = pending.popleft()
                yield future.result()
                future.release()
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        """Close the client and any cluster this executor started."""
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def local_cluster_options(workers: int, dashboard: bool) -> dict[str, Any]:
    """``LocalCluster`` arguments: every socket on 127.0.0.1; the dashboard only with ``dashboard``."""
    return {
        "n_workers": workers,
        "threads_per_worker": 1,
        "processes": True,
        "host": "127.0.0.1",
        # None does not turn the scheduler's web server off (it then takes port 8787)
        "dashboard_address": "127.0.0.1:0" if dashboard else None,
        "worker_dashboard_address": None,
    }


async def _stop_http(dask_worker: Any = None, dask_scheduler: Any = None) -> None:
    server = dask_worker if dask_worker is not None else dask_scheduler
    if getattr(server, "http_server", None) is not None:
        server.http_server.stop()


def stop_http_servers(client: Any, scheduler: bool) -> None:
    """Close the web servers Dask starts on every worker (and on the scheduler if ``scheduler``).

    Dask serves health and metrics routes over HTTP even without a dashboard (the scheduler on
    port 8787); a mapping run needs only the scheduler's and workers' own connections.
    """
    if scheduler:
        client.run_on_scheduler(_stop_http)
    client.run(_stop_http)


def make_executor(
    predictor: Any, workers: int = 0, scheduler: str | None = None, timeout: float = 30.0, dashboard: bool = False
):
    """:class:`LocalExecutor` for ``workers=0`` and no scheduler, else :class:`DaskExecutor`."""
    if workers < 0:
        raise ConfigError(f"workers must be >= 0, got {workers}")
    if workers == 0 and not scheduler:
        return LocalExecutor(predictor)
    return DaskExecutor(predictor, workers=workers, scheduler=scheduler, timeout=timeout, dashboard=dashboard)
