"""Before the first request: the configuration checked against the authorization server at
startup (lifespan), and the mounted case, in which the middleware sees neither the host-root
well-known URLs nor lifespan events and the outer app must serve and run them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Self

from starlette.routing import Route
from starlette.types import ASGIApp, Message, Send

from .config import AuthConfig
from .config.broker import BrokerContract
from .cors import with_cors
from .decisions import Decisions
from .errors import AuthError, AuthorizationServerUnavailableError, ConfigurationError
from .resource_metadata import WELL_KNOWN, ResourceMetadata
from .validators.base import Validator

__all__ = ["AroundRequests", "Startup"]

logger = logging.getLogger("mcp_auth_middleware")

_CHECK_TIMEOUT = 10.0


class Startup:
    """The startup of one middleware around `app`."""

    def __init__(
        self,
        app: ASGIApp,
        validator: Validator,
        metadata: ResourceMetadata,
        decisions: Decisions,
        *,
        strict: bool,
        cors_origins: tuple[str, ...] | None,
        broker: BrokerContract | None = None,
    ) -> None:
        self.app, self.validator, self.metadata, self.decisions = app, validator, metadata, decisions
        #: The broker (`broker=`): its metadata routed here too, and closed with the app (its
        #: connections are opened on the server's loop).
        self.broker = broker
        self.on_shutdown: Callable[[], Awaitable[None]] | None = broker.aclose if broker is not None else None
        self.strict, self.cors_origins = strict, cors_origins
        self.resource = metadata.resource
        self.well_known_routed = False

    async def check(self) -> AuthError | None:
        """The configuration against the authorization server (discovery, keys, introspection
        credentials): None when all is well, else the error a request would get. One line:
        ERROR for a misconfiguration, WARNING when the server could not be reached."""
        problem: AuthError | None = None
        try:
            async with asyncio.timeout(_CHECK_TIMEOUT):
                await self.validator.check()
        except AuthError as error:
            problem = error
        except TimeoutError:
            problem = AuthorizationServerUnavailableError(
                detail=f"no answer from the authorization server within {_CHECK_TIMEOUT:.0f} s"
            )
        if isinstance(problem, ConfigurationError):
            self.decisions.said_misconfigured(problem.detail)  # said here: requests need not say it again
            logger.error("%s is misconfigured: %s", self.resource, problem.detail)
        elif problem is not None:
            logger.warning(
                "could not check %s against its authorization server (%s); requests get 503 until it answers",
                self.resource,
                problem.detail or problem.description,
            )
        return problem

    async def lifespan_send(self, message: Message, *, send: Send) -> None:
        """The wrapped app's lifespan `send`: when its startup is complete, the check runs."""
        if message["type"] == "lifespan.startup.complete":
            problem = await self.check()
            if self.strict and isinstance(problem, ConfigurationError):
                # strict_startup: refuse to start rather than answer every request with 503.
                message = {"type": "lifespan.startup.failed", "message": f"misconfigured: {problem.detail}"}
        elif message["type"] == "lifespan.shutdown.complete" and self.on_shutdown is not None:
            await self.on_shutdown()
        await send(message)

    @asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """The wrapped app's lifespan, then the check, for an outer app that mounts us."""
        inner: Any = getattr(self.app, "lifespan", None) or getattr(
            getattr(self.app, "router", None), "lifespan_context", None
        )
        async with contextlib.AsyncExitStack() as stack:
            if inner is not None:
                await stack.enter_async_context(inner(self.app))
            problem = await self.check()
            if self.strict and isinstance(problem, ConfigurationError):
                raise RuntimeError(f"misconfigured: {problem.detail}")
            if not self.well_known_routed:
                # An outer app runs our lifespan, so we are mounted: say it at startup already.
                self.warn_mounted("a prefix")
            if self.on_shutdown is not None:
                stack.push_async_callback(self.on_shutdown)
            yield

    def well_known_routes(self, *, include_root: bool = True) -> list[Route]:
        """Routes serving the metadata at the host-root well-known URLs (RFC 9728 §3.1), with
        the middleware's CORS answers."""
        self.well_known_routed = True
        path = self.metadata.path
        paths = [path] + ([WELL_KNOWN] if include_root and path != WELL_KNOWN else [])
        endpoint: ASGIApp = self.metadata if self.cors_origins is None else with_cors(self.metadata, self.cors_origins)
        # The broker's metadata is at the host's root too (RFC 8414 §3): its own CORS.
        broker = (
            [Route(p, self.broker) for p in self.broker.paths if p.startswith("/.well-known/")] if self.broker else []
        )
        return [Route(p, endpoint) for p in paths] + broker

    def warn_mounted(self, prefix: str) -> None:
        self.well_known_routed = True  # say it once
        logger.warning(
            "%s is mounted under %s: clients look for its metadata at %s, which a mounted app never receives. "
            "In the outer app, add *middleware.well_known_routes() to its routes and pass "
            "lifespan=middleware.lifespan (it runs the wrapped app's lifespan, FastMCP's included, then this "
            "middleware's startup check); docs/deployment.md shows both",
            self.resource,
            prefix,
            self.metadata.url,
        )


class AroundRequests:
    """The middleware's methods around the requests (`check`, `lifespan`,
    `well_known_routes`), each its `Startup`'s."""

    startup: Startup

    @classmethod
    def from_env(cls, app: ASGIApp, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Configuration from `MCP_AUTH_*` variables (see docs/configuration.md)."""
        return cls(app, AuthConfig.from_env(environ, **overrides))  # type: ignore[call-arg]

    async def check(self) -> AuthError | None:
        """Check the configuration against the authorization server now (discovery, keys,
        introspection credentials): None when all is well, else the error a request would
        get. Logs one line: ERROR for a misconfiguration, WARNING when it could not be reached."""
        return await self.startup.check()

    def lifespan(self, app: object = None) -> AbstractAsyncContextManager[None]:
        """The wrapped app's lifespan, then the configuration check, for an outer app that
        mounts this middleware (a mounted app gets no lifespan events of its own, and FastMCP's
        session manager needs them): `Starlette(routes=[...], lifespan=middleware.lifespan)`."""
        return self.startup.lifespan(app)

    def well_known_routes(self, *, include_root: bool = True) -> list[Route]:
        """Routes for the outer app that serve this resource's metadata at the host-root
        well-known URLs (RFC 9728 §3.1), for when the middleware is mounted under a prefix
        and so never sees requests for them:

            auth = MCPAuthMiddleware(mcp_app, resource="https://host/api/mcp", ...)
            app = Starlette(routes=[*auth.well_known_routes(), Mount("/api", app=auth)])

        `include_root=False` leaves `/.well-known/oauth-protected-resource` to another resource
        (with several resources on one host, at most one can have it).
        """
        return self.startup.well_known_routes(include_root=include_root)
