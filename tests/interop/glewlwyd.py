"""Glewlwyd (Debian's `glewlwyd` package), a second real authorization server, a C
implementation unrelated to oidc-provider: started headless on 127.0.0.1 with a SQLite
database made from the package's own schema, then configured through its admin API as an
operator would in its web page: the OpenID Connect plugin (RS256 keys of ours, RFC 8707
resource indicators, RFC 7662 introspection for bearer-authenticated resource servers, RFC 9449
DPoP), the scopes and the clients.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx2
import pytest
from joserfc.jwk import RSAKey

from ..processes import stop_process, wait_for_port

SCHEMA = Path("/usr/share/doc/glewlwyd/database/init.sqlite3.sql.gz")
MODULES = Path("/usr/lib/glewlwyd")
RESOURCE = "https://glewlwyd-mcp.example.com/mcp"
#: The client an MCP client would be, and the resource server's own (it introspects).
MCP_CLIENT = ("mcp-client", "mcp-client-secret")
RESOURCE_SERVER = ("mcp-resource-server", "mcp-resource-server-secret")
#: The password the schema gives the administrator (glewlwyd's documented default).
ADMIN = {"username": "admin", "password": "password"}

CONFIG = """
port={port}
bind_address="127.0.0.1"
external_url="http://127.0.0.1:{port}"
login_url="login.html"
api_prefix="api"
allow_origin="*"
log_mode="console"
log_level="WARNING"
cookie_secure=0
session_expiration=3600
session_key="GLEWLWYD2_SESSION_ID"
admin_session_authentication="cookie"
profile_session_authentication="cookie"
login_api_enabled=true
admin_scope="g_admin"
profile_scope="g_profile"
user_module_path="{modules}/user"
client_module_path="{modules}/client"
user_auth_scheme_module_path="{modules}/scheme"
plugin_module_path="{modules}/plugin"
use_secure_connection=false
secure_connection_key_file="/dev/null"
secure_connection_pem_file="/dev/null"
hash_algorithm="SHA512"
database = {{
  type = "sqlite3"
  path = "{database}"
}}
"""


@dataclass
class Glewlwyd:
    port: int
    directory: Path
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "glw-1", "alg": "RS256"}))
    process: subprocess.Popen[bytes] | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def issuer(self) -> str:
        return f"{self.api}/oidc"

    def start(self) -> None:
        binary = shutil.which("glewlwyd")
        if binary is None or not SCHEMA.exists():
            pytest.fail("glewlwyd is not installed: `make test` installs Debian's glewlwyd")
        database = self.directory / "glewlwyd.db"
        with sqlite3.connect(database) as db:
            db.executescript(gzip.decompress(SCHEMA.read_bytes()).decode())
        config = self.directory / "glewlwyd.conf"
        config.write_text(CONFIG.format(port=self.port, modules=MODULES, database=database))
        self.process = subprocess.Popen(
            [binary, f"--config-file={config}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        wait_for_port(self.port, self.process, "glewlwyd")
        self.configure()

    def configure(self) -> None:
        """What an operator does in glewlwyd's admin page, through its API."""
        parameters = {
            "iss": self.issuer,
            "jwks-private": json.dumps({"keys": [self.key.as_dict(private=True)]}),
            "default-kid": "glw-1",
            "access-token-duration": 3600,
            "refresh-token-duration": 3600,
            "code-duration": 600,
            "refresh-token-rolling": True,
            "allow-non-oidc": True,
            "auth-type-code-enabled": True,
            "auth-type-client-enabled": True,
            "auth-type-refresh-enabled": True,
            "auth-type-token-enabled": False,
            "auth-type-id-token-enabled": True,
            "auth-type-device-enabled": False,
            "auth-type-password-enabled": False,
            # RFC 7662: resource servers authenticate with a bearer token carrying this scope.
            "introspection-revocation-allowed": True,
            "introspection-revocation-auth-scope": ["introspect"],
            "introspection-revocation-allow-target-client": False,
            # RFC 8707: `resource` is the audience, for the clients allowed that scope.
            "resource-allowed": True,
            "resource-scope": {"mcp": [RESOURCE]},
            "resource-change-allowed": False,
            # RFC 9449.
            "oauth-dpop-allowed": True,
            "oauth-dpop-iat-duration": 60,
            # RFC 7636, for the broker's sign-ins (tests/broker/test_glewlwyd_upstream.py).
            "pkce-allowed": True,
            "pkce-method-plain-allowed": False,
        }
        with httpx2.Client(base_url=self.api, timeout=10) as admin:
            steps = [
                ("POST", "/auth/", ADMIN),
                (
                    "POST",
                    "/mod/plugin/",
                    {"module": "oidc", "name": "oidc", "display_name": "OIDC", "parameters": parameters},
                ),
                ("PUT", "/mod/plugin/oidc/enable", None),
                *(
                    (
                        "POST",
                        "/scope/",
                        {
                            "name": name,
                            "display_name": name,
                            "description": name,
                            "password_required": False,
                            "scheme": {},
                        },
                    )
                    for name in ("mcp", "introspect")
                ),
                *(
                    (
                        "POST",
                        "/client/",
                        {
                            "client_id": client_id,
                            "name": client_id,
                            "confidential": True,
                            "enabled": True,
                            "client_secret": secret,
                            "scope": [scope],
                            "authorization_type": ["client_credentials"],
                            "redirect_uri": [],
                            "token_endpoint_auth_method": ["client_secret_basic"],
                        },
                    )
                    for (client_id, secret), scope in ((MCP_CLIENT, "mcp"), (RESOURCE_SERVER, "introspect"))
                ),
            ]
            for method, path, body in steps:
                response = admin.request(method, path, json=body)
                assert response.status_code == 200, f"glewlwyd {method} {path}: {response.status_code} {response.text}"

    def admin(self, *steps: tuple[str, str, object]) -> None:
        """Admin API calls, as the administrator (each must answer 200)."""
        with httpx2.Client(base_url=self.api, timeout=10) as admin:
            for method, path, body in [("POST", "/auth/", ADMIN), *steps]:
                response = admin.request(method, path, json=body)
                assert response.status_code == 200, f"glewlwyd {method} {path}: {response.status_code} {response.text}"

    def add_user(self, username: str, password: str) -> None:
        """A user of the database backend who may sign in with OpenID Connect (with a password:
        the schema's `openid` scope asks for none, and glewlwyd then counts no login as enough)."""
        openid = {"name": "openid", "display_name": "Open ID", "description": "OpenID Connect",
                  "password_required": True, "password_max_age": 3600, "scheme": {}}  # fmt: skip
        self.admin(("PUT", "/scope/openid", openid), ("POST", "/user/", {
            "username": username, "password": password, "name": username, "email": f"{username}@example.com",
            "enabled": True, "scope": ["openid"]}))  # fmt: skip

    def add_sign_in_client(self, client_id: str, secret: str, redirect_uri: str) -> None:
        """A confidential client with the authorization code and refresh grants (a broker)."""
        self.admin(("POST", "/client/", {
            "client_id": client_id, "name": client_id, "confidential": True, "enabled": True,
            "client_secret": secret, "scope": ["openid"], "redirect_uri": [redirect_uri],
            "authorization_type": ["code", "refresh_token"],
            "token_endpoint_auth_method": ["client_secret_basic"]}))  # fmt: skip

    async def sign_in(self, authorization_url: str, username: str, password: str, client_id: str) -> dict[str, str]:
        """A user's browser at glewlwyd, through its login API (what its login page calls): the
        password, the scopes granted to the client, then the authorization URL; the parameters
        of the redirect back."""
        async with httpx2.AsyncClient(timeout=10) as browser:
            login = await browser.post(f"{self.api}/auth/", json={"username": username, "password": password})
            assert login.status_code == 200, login.text
            grant = await browser.put(f"{self.api}/auth/grant/{client_id}", json={"scope": "openid"})
            assert grant.status_code == 200, (grant.status_code, grant.text)
            response = await browser.get(authorization_url)
            assert response.status_code == 302, response.text[:300]
            location = dict(parse_qsl(urlsplit(response.headers["location"]).query))
            if "callback_url" in location:  # its login page, where the user clicks Continue:
                response = await browser.get(location["callback_url"] + "&g_continue")
                assert response.status_code == 302, response.text[:300]
                location = dict(parse_qsl(urlsplit(response.headers["location"]).query))
        return location

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None
