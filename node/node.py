"""Composition: the one place that builds the store, the API and the HTTP server and wires them.

Nothing here looks anything up globally; each part gets exactly what it uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import random
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from protocol.ids import IdKind, format_id

from .admin import ADMIN_URL_FILE, TOKEN_FILE, AdminApi, NodeAdmin, ensure_token
from .admission import ClientAdmission, expire_loop, store_policy
from .admission_admin import AdmissionAdmin
from .api import Api, respond, status_named_error
from .config import CONFIG_NAME, Config, ConfigError, Federation, load_config, render_config
from .gossip import Gossip, Scope, node_record
from .gov_api import GovApi
from .governance import Governance
from .http import HttpServer, install_repeat_filter, raise_open_files_limit
from .ingest import Ingestor
from .keyfile import read_key_file, write_key_file
from .metrics import Metrics
from .ops import DataDirLock, advertise_problem, loopback_problem
from .peer_api import PeerApi
from .peers import PeerBook, PeerClient
from .store import Store

if TYPE_CHECKING:
    from rich.console import Console

log = logging.getLogger("coopnet.node")

URL_FILE = "coopnet.url"  # written on start: where this node listens (useful with port 0)
PROGRESS_BAR_MIN_ACTIONS = 1000  # a catch-up this large draws a progress bar on a terminal
PROGRESS_BAR_POLL_S = 0.1  # how often the bar looks at the catch-up's progress
GC_YOUNG_THRESHOLD = 10_000  # allocations between young-generation collections (CPython's default: 700)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def init_data_dir(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8470,
    log_level: str = "info",
    federation: Federation | None = None,
    advertise_url: str = "",
    admin_listen: str | None = None,
) -> Config:
    """Create a data directory with a config, a node key and an admin token; refuse if one is
    already there."""
    data_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = data_dir / CONFIG_NAME
    if cfg_path.exists():
        raise ConfigError(f"{cfg_path} already exists; refusing to overwrite (delete it to start over)")
    key_path = data_dir / "node.key"
    if key_path.exists():
        raise ConfigError(f"{key_path} already exists; refusing to overwrite a node key")
    write_key_file(key_path, "node")
    ensure_token(data_dir)
    kw = {} if admin_listen is None else {"admin_listen": admin_listen}
    cfg_path.write_text(render_config(host, port, log_level, federation, advertise_url, **kw))
    return load_config(cfg_path, env={})


def check_writable(data_dir: Path) -> None:
    """Raise OSError naming the directory if the node could not write there (read-only mount,
    wrong owner): said plainly at start, not as SQLite's "unable to open database file"."""
    try:
        with tempfile.TemporaryFile(dir=data_dir, prefix=".coopnet-write-check-"):
            pass
    except OSError as e:
        raise OSError(e.errno, f"data directory {data_dir} is not writable ({e.strerror})") from None


class Node:
    """A running node. Everything is built in ``start``, in one place, with explicit arguments."""

    def __init__(
        self,
        config: Config,
        store: Store,
        ingestor: Ingestor,
        gossip: Gossip,
        book: PeerBook,
        runner: web.AppRunner,
        node_id: bytes,
        url: str,
        *,
        admin_runner: web.AppRunner | None = None,
        admin_url: str | None = None,
        lock: DataDirLock | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.ingestor = ingestor
        self.gossip = gossip
        self.book = book
        self.runner = runner
        self.node_id = node_id
        self.url = url
        self.admin_runner = admin_runner
        self.admin_url = admin_url  # None when [admin] listen is empty
        self.lock = lock
        self._gov_task: asyncio.Task[None] | None = None
        self._checks: asyncio.Task[None] | None = None
        self._expiry_task: asyncio.Task[None] | None = None
        self.http: HttpServer | None = None

    @classmethod
    async def start(cls, config: Config, *, clock_ms: Callable[[], int] = wall_clock_ms, rng: random.Random | None = None) -> Node:
        rng = rng or random.Random()
        lock = DataDirLock.acquire(config.data_dir, "coopnet run")
        try:
            return await cls._start(config, lock, clock_ms, rng)
        except BaseException:
            lock.release()
            raise

    @classmethod
    async def _start(cls, config: Config, lock: DataDirLock, clock_ms: Callable[[], int], rng: random.Random) -> Node:
        key = read_key_file(config.key_path, "node")
        check_writable(config.data_dir)
        token = ensure_token(config.data_dir) if config.admin.enabled else None
        fed = config.federation
        metrics = Metrics()
        store = await Store.open(
            config.database_path,
            synchronous=config.synchronous,
            clock_ms=clock_ms,
            max_pending=config.limits.max_pending,
            max_group=config.limits.max_group,
            policy=store_policy(config),
        )
        metrics.quarantine_actions.set_function(lambda: store.held_count)
        metrics.pending_actions.set_function(lambda: store.pending_count)
        metrics.stored_bytes.set_function(lambda: store.stored_bytes)
        scope = Scope(fed.replicate)
        ingestor = Ingestor(
            store,
            config.limits,
            metrics,
            admission=config.admission,
            in_scope=scope,
            configured=lambda: scope.configured,
            clock_ms=clock_ms,
        )
        book = PeerBook(key.public_key, fed, clock_ms, rng, metrics)
        try:
            for blocked in await store.blocked_nodes():
                book.block(blocked)
        except BaseException:
            await store.close()
            raise
        client = PeerClient(key, clock_ms, metrics, fed.request_timeout, fed.request_rate)
        where: dict[str, str] = {}  # the advertised URL is known once the socket is bound

        def record() -> bytes:
            return node_record(key, where["url"], fed, scope, clock_ms())

        peer_api = PeerApi(
            node_id=key.public_key,
            store=store,
            ingestor=ingestor,
            book=book,
            client=client,
            federation=fed,
            limits=config.limits,
            metrics=metrics,
            clock_ms=clock_ms,
            in_scope=scope,
            my_record=record,
        )
        gossip = Gossip(
            record=record,
            scope=scope,
            store=store,
            peer_api=peer_api,
            book=book,
            client=client,
            federation=fed,
            limits=config.limits,
            metrics=metrics,
            clock_ms=clock_ms,
            rng=rng,
        )
        governance = Governance(store, scope, clock_ms)
        gossip.missing_deps = governance.missing_deps
        peer_api.consents = governance.consents
        http = HttpServer(config.limits, metrics)
        admission = ClientAdmission(config.admission, clock_ms, metrics)
        api = Api(
            store,
            ingestor,
            key.public_key,
            config.limits,
            clock_ms(),
            clock_ms,
            metrics,
            gossip.status,
            book.view,
            governance,
            admission,
            offload=http.offload,
        )
        app = api.app()
        app.add_routes(peer_api.routes())
        app.add_routes(GovApi(governance, respond, status_named_error).routes())  # type: ignore[arg-type]
        # Other parts of the node add their admin endpoints here: admin.add_routes(x.routes()).
        admin = AdminApi(token or "", NodeAdmin(store, book, clock_ms).routes())
        admin.add_routes(AdmissionAdmin(store, config.admission, clock_ms).routes())
        runner = http.runner(app)
        admin_runner: web.AppRunner | None = None
        http.start()
        try:
            await runner.setup()
            site = web.TCPSite(runner, config.host, config.port, reuse_address=True)
            await site.start()
            if token is not None:
                # Its own listener: a reverse proxy in front of the public port never reaches it.
                admin_runner = web.AppRunner(admin.app(), access_log=None, handle_signals=False)
                await admin_runner.setup()
                await web.TCPSite(admin_runner, config.admin.host, config.admin.port, reuse_address=True).start()
            host, port = runner.addresses[0][:2]
            url = f"http://{host}:{port}"
            where["url"] = fed.advertise_url or url
            (config.data_dir / URL_FILE).write_text(url + "\n")
            admin_url = None
            if admin_runner is not None:
                admin_host, admin_port = admin_runner.addresses[0][:2]
                admin_url = f"http://[{admin_host}]:{admin_port}" if ":" in admin_host else f"http://{admin_host}:{admin_port}"
                (config.data_dir / ADMIN_URL_FILE).write_text(admin_url + "\n")
        except BaseException:
            # Whatever failed (a read-only data directory fails here, after the bind), release
            # the ports and the store's threads, or the process would linger holding the port.
            for r in (admin_runner, runner):
                if r is not None:
                    await r.cleanup()
            await http.close()
            ingestor.close()
            await store.close()
            raise
        if admin_url is not None:
            log.info("admin API on %s (coopnet admin ..., token in %s)", admin_url, config.data_dir / TOKEN_FILE)
            if not ipaddress.ip_address(admin_runner.addresses[0][0]).is_loopback:  # type: ignore[union-attr]
                log.warning("the admin API listens on %s, not on loopback: only its token protects it", admin_url)
        if fed.peers or fed.open:
            ingestor.warm()
        gossip.start()
        gov_task = asyncio.create_task(governance.run(max(fed.anti_entropy_interval, 1.0)), name="governance-refresh")
        expiry_task = asyncio.create_task(expire_loop(store), name="admission-expiry")
        log.info("node %s listening on %s, store %s", format_id(IdKind.NODE, key.public_key), url, config.database_path)
        if fed.peers or fed.open:
            log.info("federation %r: %d configured peers, %s", fed.name, len(book.peers), "open" if fed.open else "closed")
        problem = advertise_problem(config.host, port, fed.advertise_url)
        if problem is not None:
            log.warning("%s", problem)
        node = cls(
            replace(config, port=port),
            store,
            ingestor,
            gossip,
            book,
            runner,
            key.public_key,
            url,
            admin_runner=admin_runner,
            admin_url=admin_url,
            lock=lock,
        )
        node._gov_task = gov_task
        node._expiry_task = expiry_task
        node.http = http
        if fed.peers:
            node._checks = asyncio.create_task(_warn_loopback(where["url"], [p.url for p in fed.peers]), name="exposure-check")
        return node

    async def stop(self) -> None:
        for name in (URL_FILE, ADMIN_URL_FILE):
            with contextlib.suppress(FileNotFoundError):
                (self.config.data_dir / name).unlink()
        for task in (self._checks, self._gov_task, self._expiry_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.gossip.stop()
        if self.admin_runner is not None:
            await self.admin_runner.cleanup()
        await self.runner.cleanup()
        if self.http is not None:
            await self.http.close()
        self.ingestor.close()
        await self.store.close()
        if self.lock is not None:
            self.lock.release()
        log.info("node stopped")


async def _warn_loopback(advertised: str, peer_urls: list[str]) -> None:
    # In the background: it may resolve peers' host names, and it only ever warns.
    problem = await loopback_problem(advertised, peer_urls)
    if problem is not None:
        log.warning("%s", problem)


async def serve(config: Config, console: Console | None = None) -> None:
    """Run a node until SIGINT or SIGTERM. With a console (an interactive terminal), catch-up
    shows as a progress bar; otherwise the gossip layer logs progress lines."""
    before, after = raise_open_files_limit()
    if after != before:
        log.info("open files limit raised from %d to %d", before, after)
    repeat_filter = install_repeat_filter(config.limits.log_repeat_interval)
    node = await Node.start(config)
    assert node.http is not None
    node.http.filter = repeat_filter
    tune_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    bar = asyncio.create_task(_progress_bar(node, console)) if console is not None else None
    try:
        await stop.wait()
    finally:
        try:
            if bar is not None:
                bar.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await bar
        finally:  # the terminal is a nicety: whatever it raised, the node still stops
            await node.stop()


def tune_gc() -> None:
    """Once a node process has started: keep what start-up built out of every later collection,
    and collect young objects less often. A node allocates a few containers per action it
    receives (the action, its envelope, tuples) and holds a group of thousands while it stores
    them, so at CPython's default each group is traversed many times over and pushed into the
    older generations; under callgrind the collector cost about a tenth of the instructions of a
    catch-up's main process. Cycles are rare here (reference counting frees the rest at once), so
    the memory a larger threshold can hold back is a few MB at most."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


async def _progress_bar(node: Node, console: Console) -> None:
    # Imported here: a node run as a service (no terminal) never loads rich.
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress: Progress | None = None
    task = None
    try:
        while True:
            p = node.gossip.progress
            if p.active and p.total >= PROGRESS_BAR_MIN_ACTIONS:
                if progress is None:
                    progress = Progress(
                        TextColumn("catch-up"),
                        BarColumn(),
                        MofNCompleteColumn(),
                        TextColumn("actions"),
                        TimeRemainingColumn(),
                        console=console,
                    )
                    task = progress.add_task("catch-up", total=p.total, completed=p.done)
                    progress.start()
                assert task is not None
                progress.update(task, total=p.total, completed=p.done)
            elif progress is not None:
                if task is not None:  # drawn once more, complete, as it goes
                    progress.update(task, total=p.total, completed=p.done)
                progress.stop()
                progress, task = None, None
            await asyncio.sleep(PROGRESS_BAR_POLL_S)
    except asyncio.CancelledError:
        raise
    except Exception:
        # A terminal that cannot be drawn on must not take the node down: say so once, stop drawing.
        log.warning("catch-up progress bar failed; progress is still logged", exc_info=True)
    finally:
        if progress is not None:
            with contextlib.suppress(Exception):
                progress.stop()
