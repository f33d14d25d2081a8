"""``coopnet run`` on a terminal, and a start that fails (issue #10, finding 11).

A real ``coopnet run`` process whose standard streams are a pseudo-terminal that is also its
controlling terminal, so Ctrl-C is the byte 0x03 typed into the terminal and reaches the node's
whole foreground process group (validation workers included), as it would for an operator. The
node first catches up from an in-process peer holding a few thousand actions, so the catch-up
progress bar is drawn and then taken down. SIGINT and SIGTERM must both end it, with status 0,
within a deadline, and free its port.

A start that fails after the socket is bound (a read-only data directory) must exit non-zero with
a clear message and leave the port free.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import fcntl
import os
import pty
import re
import signal
import socket
import stat
import struct
import subprocess
import termios
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from node.config import Federation
from node.node import init_data_dir
from protocol import Action
from tests.conftest import member_key
from tests.fed_helpers import FED_NAME, Cluster, Member, Slot, post, wait_until
from tests.test_crash import COOPNET, HOST, NodeProcess, free_port
from tests.test_http_process import open_admission

CATCH_UP_ACTIONS = 3000  # the bar is drawn for catch-ups of 1,000 actions or more
FETCH_BATCH = 100  # small fetches: the catch-up lasts long enough to be seen
EXIT_DEADLINE_S = 20.0
CATCH_UP_DEADLINE_S = 60.0
TERMINAL_KEEP = 1 << 20  # bytes of terminal output kept for the assertions
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    """A pseudo-terminal: the child's stdio and controlling terminal; a thread drains the master."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.output = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._drain, name="pty-drain", daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError as e:  # EIO: every slave end is closed (the child exited)
                if e.errno in (errno.EIO, errno.EBADF):
                    return
                raise
            if not chunk:
                return
            with self._lock:
                self.output += chunk
                del self.output[:-TERMINAL_KEEP]

    def text(self) -> str:
        """What was written, without colours and cursor movements."""
        with self._lock:
            raw = self.output.decode(errors="replace")
        return ANSI_ESCAPE.sub("", raw)

    def popen_args(self) -> dict[str, object]:
        slave = self.slave

        def controlling_terminal() -> None:  # runs in the child, after setsid
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

        return {"stdin": slave, "stdout": slave, "stderr": slave, "preexec_fn": controlling_terminal}

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        os.close(self.slave)
        os.close(self.master)
        self._reader.join(timeout=5)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


def wait_exit(proc: subprocess.Popen[bytes], within: float) -> int | None:
    try:
        return proc.wait(timeout=within)
    except subprocess.TimeoutExpired:
        return None


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path / "peers")
    yield c
    await c.close()


async def _loaded_peer(cluster: Cluster) -> tuple[Slot, int]:
    """An open in-process node holding a co-op of CATCH_UP_ACTIONS actions."""
    (a,) = cluster.add(1, open=True)
    await cluster.start(a)
    founder = Member(member_key(1))
    genesis = founder.found("Catch-up co-op", 1)
    actions: list[Action] = [genesis]
    members = [Member(member_key(100 + i)) for i in range(10)]
    for m in members:
        actions += m.act(genesis.id, (CATCH_UP_ACTIONS - 1) // len(members))
    async with aiohttp.ClientSession() as http:
        for i in range(0, len(actions), 500):
            reply = await post(http, a.url, actions[i : i + 500])
            assert reply["rejected"] == 0, reply
    return a, len(actions)


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
async def test_run_on_a_terminal_stops_after_a_catch_up(how: str, cluster: Cluster, tmp_path: Path) -> None:
    a, total = await _loaded_peer(cluster)
    port = free_port()
    fed = Federation(name=FED_NAME, peers=(a.address,), anti_entropy_interval=0.3, fetch_batch=FETCH_BATCH)
    init_data_dir(tmp_path / "b", port=port, federation=fed)
    open_admission(tmp_path / "b")
    term = Terminal()
    node = NodeProcess(tmp_path / "b", port, **term.popen_args())
    try:
        await asyncio.to_thread(node.start)
        async with aiohttp.ClientSession() as http:

            async def caught_up() -> bool:
                async with http.get(node.url + "/api/v1/node") as r:
                    return bool((await r.json())["counts"]["actions"] == total)

            await wait_until(caught_up, within=CATCH_UP_DEADLINE_S, what="the node to catch up", explain=_explain(term))
            await wait_until(_quiet(http, node.url), within=CATCH_UP_DEADLINE_S, what="the catch-up to end", explain=_explain(term))
        # The bar was drawn on the terminal: "catch-up ━━━ 1200/3001 actions".
        assert re.search(r"catch-up.*\d+/\d+ actions", term.text()), term.text()[-3000:]
        assert node.proc is not None
        proc = node.proc
        if how == "ctrl-c":
            term.type(b"\x03")
        else:
            proc.send_signal(signal.SIGTERM)
        rc = await asyncio.to_thread(wait_exit, proc, EXIT_DEADLINE_S)
        assert rc == 0, f"exit status {rc} after {how}; terminal:\n{term.text()[-3000:]}"
        node.wait_gone()
        text = term.text()
        assert "Traceback" not in text and "TypeError" not in text, text[-3000:]
        assert port_is_free(port)
    finally:
        node.cleanup()
        term.close()


def _quiet(http: aiohttp.ClientSession, url: str) -> Callable[[], Awaitable[bool]]:
    async def done() -> bool:
        async with http.get(url + "/api/v1/node") as r:
            return not (await r.json())["catchup"]["active"]

    return done


def _explain(term: Terminal) -> Callable[[], Awaitable[str]]:
    async def tail() -> str:
        return term.text()[-3000:]

    return tail


# ---- a start that fails ------------------------------------------------------------------------

PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE = 1
CAP_DAC_READ_SEARCH = 2


def _without_root_override() -> None:
    """In the child: root keeps its uid but loses the capabilities that ignore file modes."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
            if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _read_only(path: Path) -> None:
    for p in [*path.rglob("*"), path]:
        mode = p.stat().st_mode
        p.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.mark.parametrize("store", ["new", "existing"])
def test_read_only_data_dir_exits_non_zero_and_frees_the_port(store: str, tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "ro"
    init_data_dir(data, port=port)
    if store == "existing":  # a store made by an earlier run, then the directory became read-only
        first = NodeProcess(data, port)
        try:
            first.start()
            assert first.terminate() == 0
        finally:
            first.cleanup()
    _read_only(data)
    log = tmp_path / "ro.out"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(COOPNET), "run", "--data-dir", str(data)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_without_root_override,
        )
    try:
        rc = wait_exit(proc, EXIT_DEADLINE_S)
        text = log.read_text(errors="replace")
        assert rc is not None, f"the node kept running on a read-only data directory:\n{text}"
        assert rc != 0, text
        assert "cannot_start" in text and "Traceback" not in text, text
        assert "read-only" in text or "ermission" in text or "readonly" in text, text
        assert port_is_free(port)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=EXIT_DEADLINE_S)
        for p in [data, *data.rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
