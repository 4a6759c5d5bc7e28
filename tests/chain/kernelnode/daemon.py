"""Running the node in the background: `start` launches `serve` in its own
session and returns once it answers; `stop` asks it to stop over RPC and waits
for the process to exit.

Readiness and exit are events, not guesses: the node writes one line to a pipe
its starter holds once it is listening, and the stopper waits on a pidfd.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .client import COOKIE_FILE, ENDPOINT_FILE, LOG_FILE, PID_FILE, NodeUnavailable, RpcClient
from .errors import RpcError

START_TIMEOUT_SECONDS = 120
STOP_TIMEOUT_SECONDS = 60

log = logging.getLogger("regtest")


class DaemonError(Exception):
    """Starting or stopping failed; the message says why and what to do."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _running_pid(datadir: Path) -> int | None:
    """The pid of the node serving `datadir`, or None (stale files are removed)."""
    path = datadir / PID_FILE
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if _alive(pid) and _is_our_node(pid, datadir):
        return pid
    for stale in (PID_FILE, ENDPOINT_FILE, COOKIE_FILE):
        (datadir / stale).unlink(missing_ok=True)
    return None


def _is_our_node(pid: int, datadir: Path) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"kernelnode" in argv and b"serve" in argv and str(datadir).encode() in argv


def start(datadir: Path, port: int = 0) -> dict[str, str]:
    datadir.mkdir(parents=True, exist_ok=True)
    pid = _running_pid(datadir)
    if pid is not None:
        raise DaemonError(
            f"a regtest node is already running in {datadir} (pid {pid}); "
            f"stop it first with: tests/chain/regtest stop {datadir}"
        )
    ready_read, ready_write = os.pipe()
    package_parent = Path(__file__).resolve().parent.parent
    with open(datadir / LOG_FILE, "ab") as log_file:
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kernelnode",
                "serve",
                str(datadir),
                "--port",
                str(port),
                "--ready-fd",
                str(ready_write),
            ],
            cwd=package_parent,
            env={**os.environ, "PYTHONPATH": str(package_parent)},
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            pass_fds=(ready_write,),
            start_new_session=True,
        )
    os.close(ready_write)
    try:
        line = _read_line(ready_read, START_TIMEOUT_SECONDS)
    finally:
        os.close(ready_read)
    if line is None:
        if child.poll() is None:
            child.kill()
            child.wait()
            raise DaemonError(
                f"the node did not become ready within {START_TIMEOUT_SECONDS} s and was killed; "
                f"see {datadir / LOG_FILE}"
            )
        raise DaemonError(
            f"the node exited with status {child.wait()} before it was ready: "
            f"{_log_tail(datadir)}; see {datadir / LOG_FILE}"
        )
    ready = json.loads(line)
    if "error" in ready:
        child.wait()
        raise DaemonError(f"the node did not start: {ready['error']}; see {datadir / LOG_FILE}")
    return {"rpc_url": ready["rpc_url"], "cookie_file": ready["cookie_file"]}


def _read_line(fd: int, timeout: float) -> str | None:
    """One line from `fd`, or None at end of file or after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            return None
        data += chunk
    return data.split(b"\n", 1)[0].decode()


def _log_tail(datadir: Path, lines: int = 3) -> str:
    try:
        text = (datadir / LOG_FILE).read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return " | ".join(text[-lines:]) or "empty log"


def stop(datadir: Path) -> dict[str, Any]:
    pid = _running_pid(datadir)
    if pid is None:
        raise DaemonError(
            f"no regtest node is running in {datadir}; start one with: tests/chain/regtest start {datadir}"
        )
    # Hold the process by a pidfd before asking it to stop, so a reused pid cannot fool the wait.
    pidfd = os.pidfd_open(pid)
    try:
        try:
            RpcClient.for_datadir(datadir).call("stop")
        except (NodeUnavailable, RpcError):
            # Not answering: stop it by signal, which it also handles.
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        readable, _, _ = select.select([pidfd], [], [], STOP_TIMEOUT_SECONDS)
    finally:
        os.close(pidfd)
    if not readable:
        raise DaemonError(
            f"the node (pid {pid}) did not stop within {STOP_TIMEOUT_SECONDS} s; "
            f"see {datadir / LOG_FILE}, and end it with: kill {pid}"
        )
    return {"stopped": True}


def _announce(ready_fd: int | None, message: dict[str, Any]) -> None:
    """Tell the starter, once, that the node serves (its endpoint) or why it cannot."""
    if ready_fd is not None:
        os.write(ready_fd, (json.dumps(message) + "\n").encode())
        os.close(ready_fd)


def serve(datadir: Path, port: int, ready_fd: int | None) -> int:
    """The node's main: load the chain, listen, announce readiness, serve until stopped."""
    # Imported here so that the other commands do not load the kernel library.
    from .kernel import KernelLog
    from .node import RegtestNode
    from .rpc import Methods, RpcServer

    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    kernel_log = logging.getLogger("regtest.kernel")
    KernelLog.get().set_sink(kernel_log.info)
    pid_path = datadir / PID_FILE
    try:
        # Exclusive: of two nodes started at once on one DIR, the second stops here.
        fd = os.open(pid_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        reason = f"another node serves {datadir} ({pid_path.name} exists)"
        log.error("%s", reason)
        _announce(ready_fd, {"error": reason})
        return 1
    with os.fdopen(fd, "w") as f:
        f.write(f"{os.getpid()}\n")
    stop_requested = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.set())
    signal.signal(signal.SIGINT, lambda *_: stop_requested.set())

    node = None
    server = None
    try:
        node = RegtestNode(datadir)
        node.ensure_mature_coinbase()
        cookie = f"__cookie__:{secrets.token_hex(32)}"
        cookie_path = datadir / COOKIE_FILE
        cookie_path.unlink(missing_ok=True)
        fd = os.open(cookie_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(cookie)
        server = RpcServer(port, cookie.encode(), Methods(node), stop_requested.set)
        endpoint = {"rpc_url": server.url, "cookie_file": str(cookie_path), "pid": os.getpid()}
        (datadir / ENDPOINT_FILE).write_text(json.dumps(endpoint) + "\n")
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="rpc", daemon=True).start()
        log.info("serving regtest at height %d on %s", node.index.height, server.url)
        _announce(ready_fd, endpoint)
        ready_fd = None
        stop_requested.wait()
        log.info("stopping")
    except Exception as err:
        log.exception("the node failed")
        _announce(ready_fd, {"error": f"{type(err).__name__}: {err}"})
        return 1
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        if node is not None:
            # Under the node's lock: no RPC is halfway through a block while the chainstate closes.
            node.close()
        for name in (ENDPOINT_FILE, COOKIE_FILE, PID_FILE):
            (datadir / name).unlink(missing_ok=True)
        log.info("stopped")
    return 0
