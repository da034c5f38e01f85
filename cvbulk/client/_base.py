"""What both clients share: construction, the async context manager, repr, stats, download."""

from __future__ import annotations

from types import TracebackType
from typing import Any, TypeVar

import aiohttp

from ._http import HttpCore, Timeouts
from ._ratelimit import Pacer
from ._retry import OnRetry, RetryPolicy
from ._stats import ClientStats

__all__ = ["BaseClient"]

C = TypeVar("C", bound="BaseClient")


class BaseClient:
    """What TrainingClient and PredictionClient share; not used on its own.

    ``timeouts``, ``retry`` and ``pacer`` tune how requests are sent (defaults: ``Timeouts()``,
    ``RetryPolicy()``, no rate limit); share one ``Pacer`` between the clients of one resource.
    ``on_retry`` is called with a ``RetryEvent`` before each wait for a retry (a 429 the client waits out, a
    5xx, a dropped connection), so that a program can say on screen why it is waiting; it runs in the
    request's task and must return quickly. ``session`` lends an aiohttp session (left open on close).
    """

    _service = ""      # "training" | "prediction"
    _key_header = ""   # "Training-Key" | "Prediction-Key"
    _default_api_version = ""  # "v3.3" | "v3.0": each subclass names its service's version

    def __init__(
        self,
        endpoint: str,
        key: str,
        *,
        api_version: str | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        pacer: Pacer | None = None,
        stats: ClientStats | None = None,
        session: aiohttp.ClientSession | None = None,
        max_connections: int = 64,
        on_retry: OnRetry | None = None,
    ) -> None:
        # one constructor for both clients: only the service's default version differs
        if api_version is None:
            api_version = self._default_api_version
        self.api_version = api_version
        self._http = HttpCore(
            endpoint,
            key,
            service_path=f"/customvision/{api_version}/{self._service}",
            key_header=self._key_header,
            timeouts=timeouts,
            retry=retry,
            pacer=pacer,
            stats=stats,
            session=session,
            max_connections=max_connections,
            on_retry=on_retry,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(endpoint={self.endpoint!r}, api_version={self.api_version!r})"

    __str__ = __repr__

    @property
    def endpoint(self) -> str:
        """The endpoint URL, without a trailing slash."""
        return self._http.endpoint

    @property
    def stats(self) -> ClientStats:
        """Counters of this client's requests (shared when a ClientStats was passed in)."""
        return self._http.stats

    @property
    def pacer(self) -> Pacer:
        """The rate limiter and adaptive concurrency the requests go through."""
        return self._http.pacer

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy of every request."""
        return self._http.retry

    @property
    def on_retry(self) -> OnRetry | None:
        """The hook called with a RetryEvent before each wait for a retry (None: none)."""
        return self._http.on_retry

    @on_retry.setter
    def on_retry(self, hook: OnRetry | None) -> None:
        self._http.on_retry = hook

    async def __aenter__(self: C) -> C:
        self._http.session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (an injected session is left to its owner)."""
        await self._http.aclose()

    async def download(self, url: str) -> bytes:
        """The bytes behind an image URI; the key is sent only to the endpoint's own origin."""
        return await self._http.download(url)

    # keep the key out of pickles and copies of the client
    def __getstate__(self) -> Any:
        raise TypeError(f"{type(self).__name__} cannot be pickled")
