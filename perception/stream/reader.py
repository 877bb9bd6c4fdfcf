"""A background thread between a producer and its consumer, through a bounded queue.

Two policies: ``drop_stale=True`` (live sources) replaces the oldest waiting item when the queue
is full, so the consumer always gets a recent frame and latency stays bounded; ``False`` (files)
makes the producer wait, so every item arrives, in order. Exceptions raised on the thread come
out of the consumer's ``for`` loop; ``close()`` stops the thread and joins it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_END = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


class ThreadedReader:
    """Iterate ``produce()`` on a daemon thread; iterate this object to consume.

    Each item comes out as ``(item, produced_at)`` with ``produced_at`` a ``time.perf_counter()``
    stamp, so the consumer can measure how long an item waited.

    Args:
        produce: called once on the thread; returns the iterable to drain.
        maxsize: queue length (1 for live sources: only the newest frame waits).
        drop_stale: drop the oldest item instead of waiting when the queue is full.
        on_stop: called by ``close()`` to interrupt a producer blocked inside its iterable.
        name: thread name, for debugging.
    """

    def __init__(
        self,
        produce: Callable[[], Iterable[Any]],
        maxsize: int = 4,
        drop_stale: bool = False,
        on_stop: Callable[[], None] | None = None,
        name: str = "reader",
    ):
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, maxsize))
        self._produce, self._drop_stale, self._on_stop = produce, drop_stale, on_stop
        self._stop = threading.Event()
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _put(self, entry: Any) -> bool:
        """Put, honouring the policy; False when stopped while waiting."""
        while not self._stop.is_set():
            if self._drop_stale and entry[0] is not _END and self._queue.full():
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass
            try:
                self._queue.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._produce():
                if not self._put((item, time.perf_counter())):
                    return
            self._put((_END, 0.0))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer and raised there
            self._put((_Failure(e), 0.0))

    def __iter__(self) -> Iterator[tuple[Any, float]]:
        while True:
            try:
                item, stamp = self._queue.get(timeout=0.1)
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    return
                continue
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item, stamp

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the producer and wait (bounded) for the thread to end."""
        self._stop.set()
        if self._on_stop is not None:
            self._on_stop()
        self._thread.join(timeout=timeout_s)
