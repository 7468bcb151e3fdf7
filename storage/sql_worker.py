"""The worker process that runs user SQL for storage.sql.Sandbox, and the parent's handle on it.

Why a process: DuckDB's own memory_limit does not cover every allocation (one
`repeat('a', 2000000000)` string peaked at 4.2 GB against a 1 GB limit) and its interrupt is
checked only between vectors (the same query ran 16-22 s against a 10 s limit). A worker process
is bounded from outside:

* memory: `RLIMIT_DATA` (heap and private mappings) is set to the memory bound at start, so an
  allocation past it fails inside DuckDB with an out-of-memory error; the parent also polls the
  worker's resident set (/proc/<pid>/statm) and kills it past the same bound;
* time: the parent waits for the answer until the deadline, then SIGKILLs the worker; the next
  query starts a fresh one;
* result size: the worker refuses to send more than `sql_max_result_bytes` of pickled rows, so
  the parent's memory stays bounded too.

The worker is persistent (a Sandbox keeps up to `sql_workers` of them): it is started when a
query needs it, keeps its in-memory DuckDB connection between queries, and exits when its stdin
closes or its parent dies.

Wire format (stdin / stdout of the worker): 8-byte little-endian length, then a pickle of a
tuple. Requests: ("build", plan), ("replace", {name: arrow IPC bytes}), ("query", sql, max_rows,
max_result_bytes). Answers: ("ok",), ("result", columns, types, rows, elapsed_s) or ("error",
exception class name, message).

    python -m storage.sql_worker DATA_LIMIT_BYTES     # started by WorkerProcess, not by hand
"""
from __future__ import annotations

import os
import pickle
import resource
import select
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

_HEADER = 8
_PAGE = os.sysconf("SC_PAGE_SIZE")
_POLL_S = 0.02


class WorkerKilled(RuntimeError):
    """The worker was killed (reason "time" or "memory") or died on its own (reason "died")."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# ------------------------------------------------------------------ parent side
class WorkerProcess:
    """One running worker; `call` sends a request and waits for the answer under a deadline and a memory bound."""

    def __init__(self, memory_bound_bytes: int):
        self.memory_bound = int(memory_bound_bytes)
        env = dict(os.environ)
        package_parent = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = package_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        # pyarrow's default mimalloc pool reserves ~1 GB of address space once pyarrow.dataset loads (the
        # views of an s3:// store, storage.objects), which RLIMIT_DATA counts; the system allocator does not
        env.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "storage.sql_worker", str(self.memory_bound)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True)
        self._buffer = bytearray()
        weakref.finalize(self, _reap, self.proc)  # a dropped handle does not leave its worker behind

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_bytes(self) -> int:
        try:
            with open(f"/proc/{self.proc.pid}/statm") as f:
                return int(f.read().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            return 0

    def call(self, request: tuple, deadline: float | None = None) -> tuple:
        """Send `request`; return the answer tuple. Raises WorkerKilled (the worker is then gone)."""
        data = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.proc.stdin.write(len(data).to_bytes(_HEADER, "little") + data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.kill()
            raise WorkerKilled("died", f"exit status {self.proc.returncode}") from None
        fd = self.proc.stdout.fileno()
        while True:
            answer = self._take_message()
            if answer is not None:
                return answer
            if deadline is not None and time.monotonic() >= deadline:
                self.kill()
                raise WorkerKilled("time")
            rss = self.rss_bytes()
            if rss > self.memory_bound:
                self.kill()
                raise WorkerKilled("memory", f"resident set {rss / 2**20:.0f} MiB")
            wait = _POLL_S if deadline is None else max(0.0, min(_POLL_S, deadline - time.monotonic()))
            ready, _, _ = select.select([fd], [], [], wait)
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    self.kill()
                    raise WorkerKilled("died", f"exit status {self.proc.returncode}")
                self._buffer += chunk

    def _take_message(self) -> tuple | None:
        if len(self._buffer) < _HEADER:
            return None
        size = int.from_bytes(self._buffer[:_HEADER], "little")
        if len(self._buffer) < _HEADER + size:
            return None
        body = bytes(self._buffer[_HEADER:_HEADER + size])
        del self._buffer[:_HEADER + size]
        return pickle.loads(body)

    def kill(self) -> None:
        """SIGKILL and reap the worker (its peak RSS then counts in the parent's RUSAGE_CHILDREN)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass

    def close(self) -> None:
        """Ask the worker to exit (stdin EOF); kill it if it does not within a second."""
        _reap(self.proc)


def _reap(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            proc.stdin.close()
            proc.wait(timeout=1)
        except (OSError, subprocess.TimeoutExpired):
            pass
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for stream in (proc.stdin, proc.stdout):
        try:
            stream.close()
        except OSError:
            pass


# ------------------------------------------------------------------ worker side
def _read_exact(stream, n: int) -> bytes | None:
    out = bytearray()
    while len(out) < n:
        chunk = stream.read(n - len(out))
        if not chunk:
            return None
        out += chunk
    return bytes(out)


def _watch_parent(parent: int) -> None:
    """Exit when the parent dies (a query may be running; stdin EOF alone would not be seen)."""
    while True:
        if os.getppid() != parent:
            os._exit(3)
        time.sleep(0.5)


def _serve(data_limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_DATA, (data_limit, data_limit))
    inp = sys.stdin.buffer
    # The channel is a private copy of fd 1; fd 1 itself now goes to stderr, so nothing written to
    # stdout from C (a DuckDB progress bar, say) can corrupt the answers.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which kills us
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()

    from . import sql  # noqa: PLC0415 - imported after the limit so that DuckDB allocates under it

    state = sql.WorkerState()
    while True:
        header = _read_exact(inp, _HEADER)
        if header is None:
            return
        body = _read_exact(inp, int.from_bytes(header, "little"))
        if body is None:
            return
        try:
            answer = state.handle(pickle.loads(body))
            data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except MemoryError:
            data = pickle.dumps(("error", "OutOfMemoryException", "out of memory while building the answer"))
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the parent as an answer
            data = pickle.dumps(("error", type(exc).__name__, str(exc)))
        out.write(len(data).to_bytes(_HEADER, "little") + data)
        out.flush()


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
