"""The store's run observer: ``on_event`` only enqueues; a writer thread persists events in batches.

Nothing on the engine's threads waits for the database. A batch that fails is retried with
backoff, then event by event; an event that still cannot be written is logged and counted.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence

from sqlalchemy import Engine
from sqlmodel import Session

from engine.events import Event
from storage.ingest import BatchWriter

log = logging.getLogger(__name__)

_FLUSH = object()  # wakes the writer so it writes what it holds now
_STOP = object()


class EventRecorder:
    """A RunObserver that persists events off the caller's thread (see module docstring)."""

    def __init__(
        self, engine: Engine, *, batch_size: int = 200, interval_s: float = 0.2, retries: int = 5
    ) -> None:
        self.engine = engine
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.retries = retries
        self.failed = 0  # events given up on after every retry (each one logged)
        self.batches = 0  # transactions committed
        self.last_error: str | None = None
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._enqueued = 0
        self._done = 0
        self._thread: threading.Thread | None = None

    # -- the observer side (engine threads) --------------------------------------------------

    def on_event(self, event: Event) -> None:
        with self._cond:
            self._enqueued += 1
            self._queue.put(event)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="servicegrid-store-writer", daemon=True)
                self._thread.start()

    @property
    def pending(self) -> int:
        """Events enqueued but not yet written (or given up on)."""
        with self._cond:
            return self._enqueued - self._done

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every event enqueued before this call is written; False on timeout."""
        with self._cond:
            target = self._enqueued
            if self._done >= target:
                return True
        self._queue.put(_FLUSH)
        with self._cond:
            return self._cond.wait_for(lambda: self._done >= target, timeout)

    def close(self, timeout: float = 10.0) -> bool:
        """Flush, then stop the writer thread. Events arriving later start a new one."""
        flushed = self.flush(timeout)
        with self._cond:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(_STOP)
        if thread is not None:
            thread.join(timeout)
        return flushed

    # -- the writer thread -------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            batch, stop = self._collect()
            if batch:
                self._write(batch)
                with self._cond:
                    self._done += len(batch)
                    self._cond.notify_all()
            if stop:
                return

    def _collect(self) -> tuple[list[Event], bool]:
        """Block for one event, then gather more until the batch is full, time is up or a flush."""
        batch: list[Event] = []
        deadline: float | None = None
        while len(batch) < self.batch_size:
            if deadline is None:
                item = self._queue.get()
            else:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
            if item is _STOP:
                return batch, True
            if item is _FLUSH:
                if batch:
                    break
                continue
            batch.append(item)  # type: ignore[arg-type]
            if deadline is None:
                deadline = time.monotonic() + self.interval_s
        return batch, False

    def _write(self, batch: Sequence[Event]) -> None:
        for attempt in range(self.retries):
            try:
                self._commit(batch)
                return
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("writing %d run events failed (attempt %d of %d): %s",
                            len(batch), attempt + 1, self.retries, self.last_error)
                time.sleep(min(0.05 * 2**attempt, 1.0))
        for event in batch:  # find the event at fault; write the others
            try:
                self._commit([event])
            except Exception as exc:
                self.failed += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("run event %s of run %s node %s could not be stored and is lost: %s\n%r",
                          event.kind, event.run_id, event.node_id, self.last_error, event.to_dict())

    def _commit(self, batch: Sequence[Event]) -> None:
        with Session(self.engine, expire_on_commit=False) as session:
            BatchWriter(session).apply(batch)
            session.commit()
        self.batches += 1
