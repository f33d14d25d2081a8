"""A small synchronous client for the node's HTTP API, used by the CLI and scripts."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from protocol.messages import encode_submission

DEFAULT_URL = "http://127.0.0.1:8470"


class ClientError(Exception):
    """The node answered with an error, or could not be reached."""

    def __init__(self, code: str, message: str, status: int | None = None, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.body = body or {}


class Client:
    def __init__(self, url: str = DEFAULT_URL, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _request(
        self, method: str, path: str, data: bytes | None = None, content_type: str | None = None, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        # Paths carry ids as the user typed them: quote them, so a typo with a space or a bracket
        # reaches the node (and gets its bad_id) instead of failing in urllib with a traceback.
        route, sep, query = path.partition("?")
        req = urllib.request.Request(self.url + urllib.parse.quote(route, safe="/") + sep + query, data=data, method=method)
        req.add_header("Accept", "application/json")
        if content_type:
            req.add_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                body = json.loads(raw)
            except ValueError:
                raise ClientError("http_error", f"HTTP {e.code} from {self.url}", e.code) from None
            raise ClientError(body.get("error", "http_error"), body.get("message", ""), e.code, body) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            reason = getattr(e, "reason", e)
            raise ClientError("unreachable", f"cannot reach a node at {self.url}: {reason}") from None

    def get(self, path: str, **query: Any) -> dict[str, Any]:
        q = {k: v for k, v in query.items() if v is not None}
        return self._request("GET", path + ("?" + urllib.parse.urlencode(q) if q else ""))

    def submit(self, raws: list[bytes], *, single: bool = False, headers: dict[str, str] | None = None) -> dict[str, Any]:
        return self._request("POST", "/api/v1/actions", encode_submission(raws, single=single), "application/msgpack", headers)

    def node(self) -> dict[str, Any]:
        return self.get("/api/v1/node")

    def head(self, coop: str, author: str) -> tuple[int, str | None]:
        chains = self.get(f"/api/v1/coops/{coop}/chains", author=author)["chains"]
        if not chains:
            return 0, None
        return chains[0]["seq"], chains[0]["head"]
