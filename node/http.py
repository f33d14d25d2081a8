"""The HTTP server as strangers meet it: connections, request heads and bodies, before any handler.

Theory of operation. aiohttp parses HTTP in its protocol object (``RequestHandler``), one per
connection; the application's handlers see only well-formed requests. Everything a stranger can
do to the node without ever sending a well-formed request lives at that level, so this module
subclasses it (the documented extension points: ``connection_made``, ``data_received``,
``connection_lost``, ``handle_error``; the server is built by an ``AppRunner`` subclass through
``_make_server``, the hook every runner implements) and adds, with every bound in ``Limits``:

- **Connections.** At most ``max_connections`` are open, and never more than the process's
  open-file limit allows (``FD_RESERVE`` descriptors stay free for the store, the peer client and
  the verify workers). A newcomer beyond the cap takes the place of the connection that has been
  idle longest (a keep-alive connection between requests, or one that has not finished its
  request head); only if every connection is busy is the newcomer refused, with a 503 written
  straight to its socket. So a thousand idle or slowloris sockets cost the node nothing but their
  eviction, and a member's request still gets in. Evictions and refusals are counted in metrics.
- **Time.** A request head must arrive within ``header_timeout`` of a connection opening or of
  its first byte after a keep-alive pause (slowloris dribbles a byte a second: it is closed); a
  keep-alive connection may stay idle ``idle_timeout``; a body must arrive within
  ``body_timeout`` (408); a client that takes none of an answer for ``idle_timeout`` is closed.
- **Body memory.** A node-wide budget of request-body bytes in flight
  (``max_body_bytes_in_flight``): a request reserves its Content-Length (or ``max_request_bytes``
  when chunked; at least ``MIN_BODY_RESERVATION``, what its read buffers cost) before a byte of its
  body is read, and keeps the reservation until its answer is sent, since decoding a body costs a
  few times its size. A request that finds no room waits up to ``body_budget_wait`` seconds for
  one, then gets ``503 busy`` with ``Retry-After``. Bodies are read here, once, under the timeout;
  handlers get the same bytes from ``request.read()``.
- **Errors.** Every answer is JSON ``{"error", "message"}``, the parser's own included (a
  non-ASCII URL, oversized headers, a bad Content-Length, broken chunking). They, and clients
  that disconnect, are logged at most once per ``log_repeat_interval`` per kind, with a count of
  the others, never with a traceback. ``RepeatFilter`` does the same for every log line of the
  process, and the event loop's own errors (``accept()`` failing with EMFILE) go through the same
  limiter.

JSON bodies are parsed by ``parse_json``: iterative, bounded in depth, in the number of values and
in the length of numbers, so no body can make the parser recurse, allocate without bound or spend
time on a 10,000-digit integer. Large bodies are decoded on one dedicated thread (``offload``), so
the event loop keeps answering while a multi-megabyte body is taken apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import itertools
import json
import logging
import re
import resource
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from json.decoder import scanstring
from typing import Any, TypeVar

from aiohttp import http_exceptions, web, web_protocol
from aiohttp.web_request import BaseRequest

from .config import Limits
from .metrics import Metrics
from .statuses import status_for

log = logging.getLogger("coopnet.http")

T = TypeVar("T")

FD_RESERVE = 256  # open files kept free for the store, logs, peer connections (max_peers) and verify workers
MIN_CONNECTIONS = 16  # the cap never goes below this, however low the open-file limit
EVICT_SCAN = 64  # connections looked at (oldest activity first) for one to evict
MIN_BODY_RESERVATION = 64 * 1024  # bytes a body in flight costs at least: aiohttp's read buffers
OFFLOAD_MIN_BYTES = 256 * 1024  # bodies from this size on are decoded off the event loop
LINGER_S = 2.0  # seconds an unread request body is drained after the answer (aiohttp: 10)
SHUTDOWN_GRACE_S = 5.0  # requests still running at stop get this long to finish
TRIM_INTERVAL_S = 1.0  # at most this often, freed heap memory is handed back once no body is in flight
RETRY_AFTER_S = 1  # what a 503 busy tells the client to wait
JSON_MAX_NUMBER_CHARS = 24  # a JSON number this API accepts is an int64 (at most 20 characters)
MAX_REPEAT_KEYS = 4096  # kinds of log line remembered by a RepeatLimiter


def error_response(code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """The one error body of the HTTP API: ``{"error": code, "message": text}``, its status from
    the one table (node/statuses.py)."""
    return web.json_response({"error": code, "message": message}, status=status_for(code), headers=headers)


# ---- logging: repeated lines once per interval, with a count --------------------------------------


class RepeatLimiter:
    """Lets the first event of each kind through per ``interval`` and counts the others.

    ``check(key)`` says whether to log now (None: no, it was counted; a number: yes, and that many
    were held back since the last report); ``due()`` hands back, once, the count held back in each
    interval that has ended, for a summary line, so a flood that stops is still counted. Thread-safe.
    """

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: OrderedDict[Hashable, list[Any]] = OrderedDict()  # key -> [window start, held back, last example]

    def check(self, key: Hashable, example: str = "") -> int | None:
        now = self._clock()
        with self._lock:
            entry = self._seen.get(key)
            if entry is not None and now - entry[0] < self.interval:
                entry[1] += 1
                entry[2] = example
                return None
            held = entry[1] if entry is not None else 0
            self._seen[key] = [now, 0, example]
            self._seen.move_to_end(key)
            while len(self._seen) > MAX_REPEAT_KEYS:
                self._seen.popitem(last=False)
            return held

    def due(self) -> list[tuple[Hashable, int, str]]:
        """(key, held back, last example) for every ended interval that held something back."""
        now = self._clock()
        out = []
        with self._lock:
            for key, entry in self._seen.items():
                if entry[1] and now - entry[0] >= self.interval:
                    out.append((key, entry[1], entry[2]))
                    entry[1] = 0
        return out


class RepeatFilter(logging.Filter):
    """A handler filter: an identical log line (same logger, level and text) passes at most once
    per interval; how many were held back is logged by ``flush()`` (or just before the next one
    that passes). One decision per record, shared by every handler the filter is attached to."""

    SUMMARY = "coopnet_repeat_summary"

    def __init__(self, interval: float) -> None:
        super().__init__()
        self.limiter = RepeatLimiter(interval)

    def filter(self, record: logging.LogRecord) -> bool:
        decided = getattr(record, "coopnet_repeat_ok", None)
        if decided is not None:
            return bool(decided)
        held: int | None = 0
        if not getattr(record, self.SUMMARY, False):
            # Identical lines only: two different events (an admin's two changes, two peers) both pass.
            text = _safe_message(record)
            held = self.limiter.check((record.name, record.levelno, text), text)
        record.coopnet_repeat_ok = held is not None
        if held:
            self._summary(record.name, record.levelno, held, "(an earlier one)")
        return held is not None

    def flush(self) -> None:
        for (name, level, _text), held, example in self.limiter.due():
            self._summary(name, level, held, example)

    def _summary(self, name: str, level: int, held: int, example: str) -> None:
        logging.getLogger(name).log(
            level, "%d more like this in the last %g s; the last: %s", held, self.limiter.interval, example, extra={self.SUMMARY: True}
        )


def _safe_message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()[:500]
    except Exception:  # a record whose arguments do not fit its template: still a record
        return str(record.msg)[:500]


def install_repeat_filter(interval: float) -> RepeatFilter:
    """Attach one RepeatFilter to every handler of the root logger (the process's log output)."""
    f = RepeatFilter(interval)
    for handler in logging.getLogger().handlers:
        handler.addFilter(f)
    return f


# ---- the open-file limit --------------------------------------------------------------------------


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):  # e.g. macOS caps the soft limit below an infinite hard one
            return soft, soft
        return soft, target
    return soft, soft


def connection_cap(configured: int) -> int:
    """``configured``, lowered to what the open-file limit leaves after FD_RESERVE."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(MIN_CONNECTIONS, min(configured, soft - FD_RESERVE))


# ---- bounded JSON ---------------------------------------------------------------------------------


class JsonError(ValueError):
    """A JSON body refused: ``code`` is ``malformed`` (syntax) or ``too_large`` (a bound)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_LITERALS = {"true": True, "false": False, "null": None}


def parse_json(data: bytes | str, *, max_depth: int, max_values: int) -> Any:
    """Parse one JSON document (RFC 8259) without recursion: at most ``max_depth`` nested
    containers, ``max_values`` values inside containers in all, numbers of at most
    JSON_MAX_NUMBER_CHARS characters; no NaN or Infinity. Work is bounded by ``max_values``
    whatever the input's size (strings are scanned by the json module's C scanner)."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise JsonError("malformed", f"body is not UTF-8 at byte {e.start}") from None
    else:
        text = data
    n = len(text)
    ws = _WS.match
    stack: list[list[Any]] = []  # [container, key of the value being parsed (objects)]
    values = 0
    i = ws(text, 0).end()
    while True:
        # A value starts at i.
        if i >= n:
            raise JsonError("malformed", "body is not JSON: unexpected end")
        c = text[i]
        value: Any
        if c == "{" or c == "[":
            if len(stack) >= max_depth:
                raise JsonError("too_large", f"JSON nested deeper than {max_depth}")
            i = ws(text, i + 1).end()
            if c == "{":
                if text.startswith("}", i):
                    value, i = {}, i + 1
                else:
                    key, i = _key(text, i, ws)
                    stack.append([{}, key])
                    continue
            else:
                if text.startswith("]", i):
                    value, i = [], i + 1
                else:
                    stack.append([[], None])
                    continue
        elif c == '"':
            try:
                value, i = scanstring(text, i + 1, True)
            except json.JSONDecodeError as e:
                raise JsonError("malformed", f"body is not JSON: {e.msg} at {e.pos}") from None
        else:
            m = _NUMBER.match(text, i)
            if m is not None and m.end() > i:
                if m.end() - i > JSON_MAX_NUMBER_CHARS:
                    raise JsonError("malformed", f"a number longer than {JSON_MAX_NUMBER_CHARS} characters at {i}")
                frac, exp = m.group(1), m.group(2)
                value = float(m.group()) if frac or exp else int(m.group())
                i = m.end()
            else:
                for word, lit in _LITERALS.items():
                    if text.startswith(word, i):
                        value, i = lit, i + len(word)
                        break
                else:
                    raise JsonError("malformed", f"body is not JSON: unexpected {c!r} at {i}")
        # The value ends at i: put it in its container, and close every container that ends here.
        while True:
            if not stack:
                if ws(text, i).end() != n:
                    raise JsonError("malformed", f"body is not JSON: extra data at {ws(text, i).end()}")
                return value
            top = stack[-1]
            values += 1
            if values > max_values:
                raise JsonError("too_large", f"more than {max_values} values in the JSON body")
            container = top[0]
            if type(container) is dict:
                container[top[1]] = value
                close = "}"
            else:
                container.append(value)
                close = "]"
            i = ws(text, i).end()
            if text.startswith(",", i):
                i = ws(text, i + 1).end()
                if close == "}":
                    top[1], i = _key(text, i, ws)
                break
            if text.startswith(close, i):
                stack.pop()
                value, i = container, i + 1
                continue
            raise JsonError("malformed", f"body is not JSON: expected ',' or {close!r} at {i}")


def _key(text: str, i: int, ws: Callable[[str, int], Any]) -> tuple[str, int]:
    """An object key and its colon at ``i``; returns the key and where its value starts."""
    if not text.startswith('"', i):
        raise JsonError("malformed", f"body is not JSON: expected a key at {i}")
    try:
        key, i = scanstring(text, i + 1, True)
    except json.JSONDecodeError as e:
        raise JsonError("malformed", f"body is not JSON: {e.msg} at {e.pos}") from None
    i = ws(text, i).end()
    if not text.startswith(":", i):
        raise JsonError("malformed", f"body is not JSON: expected ':' at {i}")
    return key, ws(text, i + 1).end()


def int_param(query: Any, name: str, default: int, lo: int, hi: int) -> int:
    """A non-negative decimal query parameter within [lo, hi]; its length is checked before it is
    converted, so no parameter makes int() work on thousands of digits."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    digits = raw.lstrip("0") or "0" if raw.isascii() and raw.isdigit() else ""
    if not digits or len(digits) > len(str(hi)) or not lo <= int(digits) <= hi:
        raise BadParam(f"query parameter {name} must be an integer from {lo} to {hi}, got {raw[:40]!r}")
    return int(digits)


class BadParam(ValueError):
    """A query parameter out of range: answered ``400 bad_request``."""


# ---- node-wide body budget ------------------------------------------------------------------------


class BodyBudget:
    """Bytes of request bodies in flight, node-wide; reservations beyond ``limit`` wait in order.
    ``on_empty`` is called when the last reservation is given back (the memory can be returned)."""

    def __init__(self, limit: int, metrics: Metrics, on_empty: Callable[[], None] | None = None) -> None:
        self.limit = limit
        self.used = 0
        self.metrics = metrics
        self.on_empty = on_empty
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    async def acquire(self, n: int, wait: float) -> bool:
        """Reserve ``n`` bytes, waiting up to ``wait`` seconds for room; False if none came."""
        if not self._waiters and self.used + n <= self.limit:
            self._take(n)
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (n, fut)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(wait):
                await asyncio.shield(fut)
            return True
        except TimeoutError:
            if fut.done():  # room came just as the wait ended: the reservation is ours
                return True
            return False
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.release(n)  # cancelled after room was made for it: give it back
            raise
        finally:
            if not fut.done():
                fut.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(entry)
                self._wake()  # a large waiter leaving may let smaller ones behind it in

    def release(self, n: int) -> None:
        self.used -= n
        self.metrics.http_body_bytes_in_flight.set(self.used)
        self._wake()
        if self.used == 0 and self.on_empty is not None:
            self.on_empty()

    def _take(self, n: int) -> None:
        self.used += n
        self.metrics.http_body_bytes_in_flight.set(self.used)

    def _wake(self) -> None:
        while self._waiters:
            n, fut = self._waiters[0]
            if fut.done():
                self._waiters.pop(0)
                continue
            if self.used + n > self.limit:
                return  # first come, first served: a large body is not overtaken forever
            self._waiters.pop(0)
            self._take(n)
            fut.set_result(None)


# ---- connections ----------------------------------------------------------------------------------


class ConnectionGuard:
    """The open connections: the idle ones least recently active first, and the busy ones.

    A newcomer past the cap evicts the idle connection that has waited longest, preferring one
    with nothing left to send (a client not reading its answer goes only when no other can); if
    every connection is busy with a request, the newcomer is refused. Busy connections are kept
    apart so that however many of them there are, finding an idle one costs nothing.
    """

    def __init__(self, cap: int, metrics: Metrics) -> None:
        self.cap = cap
        self.metrics = metrics
        self._idle: OrderedDict[NodeRequestHandler, None] = OrderedDict()
        self._busy: set[NodeRequestHandler] = set()

    def __len__(self) -> int:
        return len(self._idle) + len(self._busy)

    def admit(self, conn: NodeRequestHandler) -> bool:
        if len(self) >= self.cap:
            victim = next((c for c in itertools.islice(self._idle, EVICT_SCAN) if c.nothing_to_send()), None)
            if victim is None and self._idle:
                victim = next(iter(self._idle))
            if victim is None:
                self.metrics.http_connections_closed.labels("refused").inc()
                return False
            self.metrics.http_connections_closed.labels("evicted").inc()
            del self._idle[victim]
            victim.force_close()
        self._idle[conn] = None
        self.metrics.http_connections.set(len(self))
        return True

    def busy(self, conn: NodeRequestHandler) -> None:
        if conn in self._idle:  # not evicted meanwhile
            del self._idle[conn]
            self._busy.add(conn)

    def idle(self, conn: NodeRequestHandler) -> None:
        if conn in self._busy:
            self._busy.discard(conn)
            self._idle[conn] = None

    def gone(self, conn: NodeRequestHandler) -> None:
        self._busy.discard(conn)
        self._idle.pop(conn, None)
        self.metrics.http_connections.set(len(self))


def _raw_error(code: str, message: str, extra: str = "") -> bytes:
    """A whole error answer as bytes, for a socket that has no request object to answer through."""
    status = status_for(code)
    body = json.dumps({"error": code, "message": message}).encode()
    head = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\nConnection: close\r\n"
    return (head + f"{extra}Content-Length: {len(body)}\r\n\r\n").encode() + body


def _refusal() -> bytes:
    return _raw_error("busy", "too many open connections; try again", f"Retry-After: {RETRY_AFTER_S}\r\n")


_PARSER_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (http_exceptions.LineTooLong, "header_too_large"),
    (http_exceptions.InvalidURLError, "bad_url"),
    (http_exceptions.BadHttpMessage, "bad_http"),
)


class NodeRequestHandler(web_protocol.RequestHandler):
    """aiohttp's per-connection protocol, with the cap, the head timeout and JSON errors."""

    def __init__(self, manager: web.Server, *, http: HttpServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._http = http
        self._busy = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._send_timer: asyncio.TimerHandle | None = None
        # The request head being received: its size so far, and its last 3 bytes (the end of a
        # head, CRLF CRLF, may straddle two reads). Counted only between requests.
        self._head_open = True
        self._head_bytes = 0
        self._head_tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self._http.guard.admit(self):
            with contextlib.suppress(Exception):
                transport.write(_refusal())  # type: ignore[attr-defined]
            self.force_close()
            return
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if data and not self._busy and self._head_timer is None:
            self._arm_head_timer()  # the first byte of a request after a keep-alive pause
        if self._head_open and data and not self._head_within_limit(data):
            return
        super().data_received(data)

    def _head_within_limit(self, data: bytes) -> bool:
        """Count a request head's bytes up to its blank line; past ``max_head_bytes`` answer 431
        and close. aiohttp bounds each header line and the number of lines, not their total:
        128 lines of 8 KB, a megabyte per connection, went through."""
        end = (self._head_tail + data).find(b"\r\n\r\n")
        if end >= 0:
            self._head_bytes += end + 4 - len(self._head_tail)
            self._head_open = False  # the body follows; the next head starts after the answer
        else:
            self._head_bytes += len(data)
            self._head_tail = (self._head_tail + data)[-3:]
        if self._head_bytes <= self._http.limits.max_head_bytes:
            return True
        self._http.metrics.http_bad_requests.labels("header_too_large").inc()
        self._http.log_repeated(
            logging.INFO, ("bad_http", "header_too_large"), "bad HTTP request: a head over %d bytes", self._http.limits.max_head_bytes
        )
        if self.transport is not None:
            message = f"the request head is longer than {self._http.limits.max_head_bytes} bytes"
            self.transport.write(_raw_error("header_too_large", message))  # type: ignore[attr-defined]
        self.force_close()
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_head_timer()
        if self._send_timer is not None:
            self._send_timer.cancel()
        self._http.guard.gone(self)
        super().connection_lost(exc)

    def nothing_to_send(self) -> bool:
        transport = self.transport
        return transport is None or transport.get_write_buffer_size() == 0  # type: ignore[attr-defined]

    def request_started(self) -> None:
        self._busy = True
        self._cancel_head_timer()
        self._http.guard.busy(self)

    def request_finished(self) -> None:
        self._busy = False
        self._http.guard.idle(self)
        self._head_open, self._head_bytes, self._head_tail = True, 0, b""
        if self._send_timer is None:
            self._send_timer = self._loop.call_later(self._http.limits.idle_timeout, self._send_check, None)

    def _send_check(self, pending_before: int | None) -> None:
        """A client that takes none of an answer for ``idle_timeout`` is closed: aiohttp waits
        on the socket for as long as it takes, and the connection would never count as idle."""
        self._send_timer = None
        transport = self.transport
        if self._busy or transport is None:
            return
        pending = transport.get_write_buffer_size()  # type: ignore[attr-defined]
        if pending == 0:
            return  # all sent: the keep-alive timer takes over
        if pending_before is not None and pending >= pending_before:
            self._http.metrics.http_connections_closed.labels("send_timeout").inc()
            self.force_close()
            return
        self._send_timer = self._loop.call_later(self._http.limits.idle_timeout, self._send_check, pending)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self._loop.call_later(self._http.limits.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._busy and self.transport is not None:
            self._http.metrics.http_connections_closed.labels("header_timeout").inc()
            self.force_close()

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's own error log (a request body whose framing broke while it read the rest, a
        handler that failed outside the middlewares): once per interval per kind, and a
        client's bad bytes or disconnect without a traceback."""
        exc = kw.get("exc_info")
        if isinstance(exc, (web_protocol.RequestPayloadError, http_exceptions.HttpProcessingError, ConnectionError)):
            self._http.log_repeated(logging.INFO, ("connection", type(exc).__name__), "a request ended badly: %s", exc)
            return
        msg = str(args[0]) if args else "error in the HTTP server"
        self._http.log_repeated(logging.ERROR, ("aiohttp", msg), "%s", msg, exc_info=exc if isinstance(exc, BaseException) else None)

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        """Answer the parser's errors (and any error aiohttp itself catches) as JSON, logged once
        per interval per kind, with no traceback for a client's bad bytes."""
        code = "internal" if status >= 500 else "bad_http"
        for cls, name in _PARSER_ERRORS:
            if isinstance(exc, cls):
                code = name
                break
        status = status_for(code)
        text = message or (getattr(exc, "message", None) or str(exc) if exc is not None else "") or "bad request"
        text = str(text)
        remote = request.remote
        if isinstance(exc, ConnectionError):
            self._http.log_repeated(logging.INFO, ("disconnect",), "client %s went away: %s", remote, exc)
            raise ConnectionError("the client went away")  # aiohttp drops the connection quietly
        if status >= 500:
            self._http.log_repeated(logging.ERROR, "internal", "error handling a request from %s: %r", remote, exc, exc_info=exc)
            text = "internal error; see the node log"
        else:
            self._http.metrics.http_bad_requests.labels(code).inc()
            self._http.log_repeated(logging.INFO, ("bad_http", code), "bad HTTP request from %s: %s: %s", remote, code, text)
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        resp = web.json_response({"error": code, "message": text[:300]}, status=status)
        resp.force_close()
        return resp


class NodeServer(web.Server):
    """aiohttp's low-level server, making NodeRequestHandler protocols."""

    def __init__(self, handler: Any, *, http: HttpServer, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._node_http = http
        self._handler_kwargs = {k: v for k, v in kwargs.items() if k not in ("request_factory", "handler_cancellation", "loop")}

    def __call__(self) -> NodeRequestHandler:
        return NodeRequestHandler(self, loop=self._loop, http=self._node_http, **self._handler_kwargs)


class NodeAppRunner(web.AppRunner):
    """An AppRunner whose server is a NodeServer."""

    def __init__(self, app: web.Application, *, http: HttpServer, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._node_http = http

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()
        return NodeServer(
            base.request_handler,
            request_factory=base.request_factory,
            loop=asyncio.get_running_loop(),
            http=self._node_http,
            **self._node_http.handler_args(),
        )


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, where there is one (not on musl or macOS)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_malloc_trim = _find_malloc_trim()


def _forget_body(request: web.Request) -> None:
    """Drop the request's cached body once its handler is done. aiohttp's connection loop keeps
    the last request of a keep-alive connection referenced until the next one arrives, and with
    it the body ``read()`` cached: 40 idle connections that each uploaded 8 MiB held 320 MiB."""
    if isinstance(request, BaseRequest):
        request._read_bytes = None  # the cache behind read(), documented as keeping the body


# ---- the server -----------------------------------------------------------------------------------


class HttpServer:
    """What the node's HTTP surface holds: the connection guard, the body budget, the log limiter,
    the decode thread. ``node.node`` builds one per node and serves its app through ``runner``."""

    def __init__(self, limits: Limits, metrics: Metrics) -> None:
        self.limits = limits
        self.metrics = metrics
        self.guard = ConnectionGuard(connection_cap(limits.max_connections), metrics)
        self.budget = BodyBudget(limits.max_body_bytes_in_flight, metrics, self._bodies_done)
        # At most half the connections can be reading a body at once, however small the bodies
        # claim to be: slow uploads cannot hold every connection busy.
        self.min_reservation = max(MIN_BODY_RESERVATION, limits.max_body_bytes_in_flight // max(1, self.guard.cap // 2))
        self._trimmed_at = float("-inf")
        self._trim_pending = False
        self._closed = False
        self.repeats = RepeatLimiter(limits.log_repeat_interval)
        self._executor: ThreadPoolExecutor | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous_handler: Any = None
        self.filter: RepeatFilter | None = None  # the process's log filter, when serve() installed one
        if self.guard.cap < limits.max_connections:
            log.warning(
                "max_connections lowered from %d to %d: the open-file limit is %d (%d kept for the store and peers)",
                limits.max_connections,
                self.guard.cap,
                resource.getrlimit(resource.RLIMIT_NOFILE)[0],
                FD_RESERVE,
            )

    def handler_args(self) -> dict[str, Any]:
        lim = self.limits
        return {
            "keepalive_timeout": lim.idle_timeout,
            "max_line_size": lim.max_header_bytes,
            "max_field_size": lim.max_header_bytes,
            "max_headers": lim.max_headers,
            # Request bodies are taken as sent: no API here accepts a compressed body, and
            # decompressing a stranger's bytes is work (and memory) for nothing.
            "auto_decompress": False,
            # After answering a request whose body was not read (413, 408), aiohttp reads and
            # drops what is still coming so the client sees the answer; not for long.
            "lingering_time": LINGER_S,
            "access_log": None,
        }

    def runner(self, app: web.Application) -> NodeAppRunner:
        app.middlewares.append(self.middleware)
        return NodeAppRunner(app, http=self, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE_S)

    def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._loop_exception)
        self._flusher = asyncio.create_task(self._flush_loop(), name="http-log-flush")

    async def close(self) -> None:
        self._closed = True
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        self.flush_logs()
        if self._loop is not None and self._loop.get_exception_handler() == self._loop_exception:
            self._loop.set_exception_handler(self._previous_handler)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def offload(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the decode thread (one per node: one extra malloc arena, and large
        bodies are taken apart one at a time)."""
        return await asyncio.get_running_loop().run_in_executor(self._decode_executor(), fn, *args)

    def _decode_executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coopnet-decode")
        return self._executor

    def _bodies_done(self) -> None:
        """Every body has been answered: hand the heap's free memory back to the system, at most
        every TRIM_INTERVAL_S. glibc keeps what large bodies freed (40 uploads of 8 MiB left a
        node at twice its idle size); malloc_trim returns it."""
        if _malloc_trim is None or self._trim_pending:
            return
        with contextlib.suppress(RuntimeError):  # no running loop: shutting down
            loop = asyncio.get_running_loop()
            self._trim_pending = True
            loop.call_later(max(0.0, self._trimmed_at + TRIM_INTERVAL_S - time.monotonic()), self._trim)

    def _trim(self) -> None:
        self._trim_pending = False
        if self.budget.used or self._closed:
            return  # bodies in flight again (the next time the budget empties trims), or stopping
        self._trimmed_at = time.monotonic()
        with contextlib.suppress(RuntimeError):  # the executor is shut down: the node is stopping
            asyncio.get_running_loop().run_in_executor(self._decode_executor(), _malloc_trim, 0)

    # ---- logging ----

    def log_repeated(self, level: int, key: Hashable, msg: str, *args: Any, exc_info: BaseException | None = None) -> None:
        """Log at most once per ``log_repeat_interval`` per ``key``; the rest are counted."""
        example = (msg % args if args else msg)[:500]
        held = self.repeats.check(key, example)
        if held is None:
            return
        if held:
            msg += f" ({held} more like this before it)"
        log.log(level, msg, *args, exc_info=exc_info if level >= logging.ERROR else None)

    def flush_logs(self) -> None:
        for _key, dropped, example in self.repeats.due():
            log.info("%d more like this in the last %g s; the last: %s", dropped, self.repeats.interval, example)
        if self.filter is not None:
            self.filter.flush()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.limits.log_repeat_interval)
            self.flush_logs()

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        message = str(context.get("message", "event loop error"))
        if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
            self.metrics.http_accept_errors.labels(errno.errorcode.get(exc.errno or 0, "?")).inc()
            self.log_repeated(logging.ERROR, ("loop", message, exc.errno), "%s: %s", message, exc)
            return
        if self.repeats.check(("loop", message, type(exc).__name__), message) is None:
            return
        if self._previous_handler is not None:
            self._previous_handler(loop, context)
        else:
            loop.default_exception_handler(context)

    # ---- the request middleware ----

    @web.middleware
    async def middleware(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        conn = request.protocol if isinstance(request.protocol, NodeRequestHandler) else None
        if conn is not None:
            conn.request_started()
        try:
            if request.body_exists:
                return await self._with_body(request, handler)
            return await handler(request)
        finally:
            if conn is not None:
                conn.request_finished()

    async def _with_body(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        lim = self.limits
        size = request.content_length
        if size is not None and size > lim.max_request_bytes:
            return error_response("too_large", f"request body of {size} bytes exceeds the limit of {lim.max_request_bytes}")
        reserve = max(size if size is not None else lim.max_request_bytes, self.min_reservation)
        if not await self.budget.acquire(reserve, lim.body_budget_wait):
            self.metrics.http_busy.inc()
            return error_response(
                "busy",
                f"the node is reading {lim.max_body_bytes_in_flight} bytes of request bodies already; retry shortly",
                {"Retry-After": str(RETRY_AFTER_S)},
            )
        try:
            try:
                async with asyncio.timeout(lim.body_timeout):
                    await request.read()
            except TimeoutError:
                self.metrics.http_connections_closed.labels("body_timeout").inc()
                resp = error_response("timeout", f"the request body did not arrive within {lim.body_timeout:g} s")
                resp.force_close()
                return resp
            except web.HTTPRequestEntityTooLarge:
                return error_response("too_large", f"request body exceeds the limit of {lim.max_request_bytes} bytes")
            except web_protocol.RequestPayloadError as e:
                self.metrics.http_bad_requests.labels("bad_body_framing").inc()
                self.log_repeated(logging.INFO, ("bad_body",), "bad request body from %s: %s", request.remote, e)
                resp = error_response("malformed", f"request body: {e}")
                resp.force_close()
                return resp
            except ConnectionError as e:
                self.log_repeated(logging.INFO, ("disconnect",), "client %s went away while sending a body: %s", request.remote, e)
                return error_response("malformed", "the connection closed before the body arrived")
            return await handler(request)
        finally:
            _forget_body(request)
            self.budget.release(reserve)
