"""FastAPI dependencies: the caller's AuthInfo, and per-route scopes with a proper 403 challenge.

    from fastapi import Depends, FastAPI
    from mcp_auth_middleware.integrations.fastapi import require_auth

    app = FastAPI()
    app.add_middleware(MCPAuthMiddleware, resource=..., issuer=...)

    @app.delete("/repos/{name}")
    async def delete_repo(name: str, auth: AuthInfo = Depends(require_auth("repo:delete"))): ...

Only Starlette is imported: FastAPI recognises the `Request` parameter and Starlette's
`HTTPException`.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request

from ..auth_info import AuthInfo
from ..policy import ROUTE_DENIAL_KEY, STEP_UP_KEY, RouteDenial, StepUp, route_checks

__all__ = ["require_auth"]


def require_auth(*scopes: str) -> Callable[[Request], AuthInfo]:
    """A dependency returning the caller's AuthInfo; 403 `insufficient_scope` naming all of
    `scopes` (and the middleware's own required scopes) when the token lacks any of them: the
    same answer, body and log line as the middleware's own 403."""
    route_checks.used = True

    def dependency(request: Request) -> AuthInfo:
        auth = request.scope.get("state", {}).get("auth")  # the middleware's request.state.auth
        step_up = request.scope.get(STEP_UP_KEY)
        if not isinstance(auth, AuthInfo) or not isinstance(step_up, StepUp):
            # The route is not behind the middleware (a public path?): refuse, never guess.
            raise HTTPException(status_code=401, detail="Authentication required")
        refusal = step_up.refusal(auth.scopes, scopes)
        if refusal is not None:
            missing = " ".join(sorted(step_up.policy.missing(auth.scopes, frozenset(scopes) | step_up.required)))
            denial = request.scope.get(ROUTE_DENIAL_KEY)
            if isinstance(denial, RouteDenial):  # the middleware sends its own answer for this
                denial.refuse(refusal, f"scope {missing} missing for {request.method} {request.url.path}")
            status, headers, _ = refusal
            raise HTTPException(
                status_code=status,
                detail="insufficient_scope",
                headers={k.decode(): v.decode("latin-1") for k, v in headers},
            )
        return auth

    return dependency
