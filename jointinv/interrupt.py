"""Stop at a safe point on SIGINT (Ctrl-C) or SIGTERM.

Inside :func:`stop_at_safe_points` the two signals only set a flag; the code
calls :func:`check` at points where stopping loses nothing but the work since
the last checkpoint (between engine calls, between line-search trials, after
each iteration's checkpoint, in the long loops of the diagnostics), and
:func:`check` raises :class:`Interrupted` once a signal has arrived. A signal
that arrives while pyGIMLi computes (its C++ code holds the interpreter) is
acted on when that engine call returns.

A second signal aborts at once: the process dies by it (exit status 128 +
signal number, no cleanup; the last checkpoint is whole, as it is written
atomically).

Outside the context manager :func:`check` costs one comparison and never
raises; entered outside the main thread, the context manager installs nothing
(Python runs signal handlers in the main thread only).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, Future, wait
from contextlib import contextmanager

#: The signals that stop a run at a safe point.
SIGNALS = (signal.SIGINT, signal.SIGTERM)

_received: int | None = None  # the first signal that arrived, while installed
_installed = False


class Interrupted(BaseException):
    """Raised at a safe point after SIGINT or SIGTERM.

    A ``BaseException`` (like ``KeyboardInterrupt``), so that the handlers that
    turn a failed step into a logged message (``except Exception``) let it pass.

    Attributes
    ----------
    signum : int
    kept : str
        What the interrupted command kept, filled in on the way up (e.g. the
        checkpoint and its iteration); empty when nothing.
    resumable : bool
        True when running the command again (with ``--resume`` for ``run``)
        continues where this one stopped.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.kept = ""
        self.resumable = False
        super().__init__(f"interrupted by {signal_name(signum)}")

    def __reduce__(self):  # picklable (from a worker process) with its attributes
        return (type(self), (self.signum,), dict(self.__dict__))

    @property
    def signal_name(self) -> str:
        return signal_name(self.signum)

    @property
    def exit_code(self) -> int:
        """128 + the signal number: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def requested() -> int | None:
    """The signal that asked to stop, or None."""
    return _received


def check() -> None:
    """Raise :class:`Interrupted` if SIGINT or SIGTERM arrived (cheap: one comparison)."""
    if _received is not None:
        raise Interrupted(_received)


@contextmanager
def stop_at_safe_points() -> Iterator[None]:
    """SIGINT and SIGTERM set the flag :func:`check` raises on; handlers restored on exit.

    A signal the process inherited as ignored (``nohup``, a background job of a
    non-interactive shell) stays ignored. Nested use is allowed (the outer
    block owns the handlers). Outside the main thread nothing is installed.
    """
    global _received, _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}

    def on_signal(signum: int, _frame: object) -> None:
        global _received
        if _received is not None:
            _abort(signum)
        _received = signum

    for s, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(s, on_signal)
    _received, _installed = None, True
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        _received, _installed = None, False


def install_for_worker() -> None:
    """In a worker process of a pool: both signals only set the flag, for good.

    The parent decides when to stop its workers (it sends them SIGTERM), so
    there is no abort on a second signal here.
    """
    global _received, _installed

    def on_signal(signum: int, _frame: object) -> None:
        global _received
        if _received is None:
            _received = signum

    for s in SIGNALS:
        if signal.getsignal(s) is not signal.SIG_IGN:
            signal.signal(s, on_signal)
    _received, _installed = None, True


def wait_for(futures: Iterable[Future], pool: Executor, *, poll: float = 0.2) -> None:
    """Wait until every future is done, looking at the flag every ``poll`` seconds (s).

    On a signal the pool's worker processes are stopped (SIGTERM) and its
    queued work cancelled before :class:`Interrupted` is raised.
    """
    waiting = set(futures)
    while waiting:
        _, waiting = wait(waiting, timeout=poll)
        if _received is not None:
            pool.shutdown(wait=False, cancel_futures=True)
            stop_workers(pool)
            check()


def stop_workers(pool: Executor) -> None:
    """Send SIGTERM to the worker processes of a ``ProcessPoolExecutor``."""
    # _processes: the workers by pid; the pool has no public accessor
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            os.kill(process.pid, signal.SIGTERM)
        except (OSError, TypeError):  # gone already, or never started
            pass


def _abort(signum: int) -> None:
    """A second signal: die by it now (its default action), without cleanup."""
    os.write(2, f"\n{signal_name(signum)} again: aborted\n".encode())
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
