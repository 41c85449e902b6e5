// A browser MCP client in a few lines: the OAuth flow of MCP authorization as a web page does
// it, with fetch (every cross-origin read goes through CORS) and one full-page redirect to the
// authorization server. Steps are kept in sessionStorage across that redirect; when the flow
// ends, `window.results` holds them and `window.done` is true (the driver waits for it).

const params = new URLSearchParams(location.search);
const stored = (name) => sessionStorage.getItem(name);

export function record(step, data) {
  const steps = JSON.parse(stored("steps") || "[]");
  steps.push({ step, ...data });
  sessionStorage.setItem("steps", JSON.stringify(steps));
}

export function finish(error) {
  if (error) record("error", { message: String(error && error.stack ? error.stack : error) });
  window.results = JSON.parse(stored("steps") || "[]");
  window.done = true;
}

const b64url = (bytes) =>
  btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const rpc = (method, args) => JSON.stringify({ jsonrpc: "2.0", id: 1, method, params: args });
const mcpHeaders = (token) => ({
  "Content-Type": "application/json",
  Accept: "application/json, text/event-stream",
  ...(token ? { Authorization: `Bearer ${token}` } : {}),
});

export async function start() {
  const resource = params.get("resource");
  sessionStorage.clear();
  sessionStorage.setItem("resource", resource);
  // 1. The 401 challenge, its WWW-Authenticate read through CORS (an exposed header).
  const first = await fetch(resource, { method: "POST", headers: mcpHeaders(), body: rpc("tools/list", {}) });
  const challenge = first.headers.get("www-authenticate");
  record("challenge", { status: first.status, challenge });
  const metadataUrl = /resource_metadata="([^"]+)"/.exec(challenge)[1];
  const scope = /scope="([^"]+)"/.exec(challenge)[1];
  // 2. The protected resource metadata (RFC 9728), then the authorization server's (RFC 8414).
  const resourceMetadata = await (await fetch(metadataUrl)).json();
  const issuer = resourceMetadata.authorization_servers[0];
  const issuerUrl = new URL(issuer); // RFC 8414 §3: the well-known path inserted before the issuer's
  const path = issuerUrl.pathname === "/" ? "" : issuerUrl.pathname;
  const server = await (await fetch(`${issuerUrl.origin}/.well-known/oauth-authorization-server${path}`)).json();
  record("metadata", { resource: resourceMetadata.resource, issuer: server.issuer });
  // 3. Dynamic client registration (RFC 7591), a public client.
  const redirect = `${location.origin}/callback.html`;
  const registered = await fetch(server.registration_endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      redirect_uris: [redirect],
      token_endpoint_auth_method: "none",
      grant_types: ["authorization_code", "refresh_token"],
      client_name: "browser test",
    }),
  });
  const client = await registered.json();
  record("registered", { status: registered.status, has_secret: "client_secret" in client });
  // 4. PKCE S256 (RFC 7636) and the redirect to the authorization endpoint.
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const codeChallenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const state = b64url(crypto.getRandomValues(new Uint8Array(16)));
  const keep = { verifier, state, redirect, client_id: client.client_id, token_endpoint: server.token_endpoint };
  for (const [name, value] of Object.entries(keep)) sessionStorage.setItem(name, value);
  const authorize = new URL(server.authorization_endpoint);
  const query = {
    response_type: "code",
    client_id: client.client_id,
    redirect_uri: redirect,
    scope,
    state,
    code_challenge: codeChallenge,
    code_challenge_method: "S256",
    resource,
  };
  for (const [name, value] of Object.entries(query)) authorize.searchParams.set(name, value);
  location.href = authorize.toString(); // back at callback.html once the server has a code for us
}

export async function callback() {
  const query = new URLSearchParams(location.search);
  record("redirected", { state_ok: query.get("state") === stored("state"), iss: query.get("iss") });
  // 5. The token request by fetch, with the PKCE verifier.
  const form = new URLSearchParams({
    grant_type: "authorization_code",
    code: query.get("code"),
    redirect_uri: stored("redirect"),
    client_id: stored("client_id"),
    code_verifier: stored("verifier"),
    resource: stored("resource"),
  });
  const answer = await fetch(stored("token_endpoint"), {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: form,
  });
  const tokens = await answer.json();
  record("token", { status: answer.status, token_type: tokens.token_type, scope: tokens.scope });
  // 6. A tool call with the token.
  const resource = stored("resource");
  const call = { method: "POST", headers: mcpHeaders(tokens.access_token) };
  const whoami = await fetch(resource, { ...call, body: rpc("tools/call", { name: "whoami", arguments: {} }) });
  record("whoami", { status: whoami.status, body: await whoami.text() });
  // 7. A tool that needs more scope: the 403 step-up challenge, read by the page.
  const denied = await fetch(resource, { ...call, body: rpc("tools/call", { name: "delete_notes", arguments: {} }) });
  record("step-up", {
    status: denied.status,
    challenge: denied.headers.get("www-authenticate"),
    body: await denied.json(),
  });
}

export async function refused() {
  // A page whose origin the resource does not allow: what the page itself can see.
  sessionStorage.clear();
  try {
    const answer = await fetch(params.get("resource"), {
      method: "POST",
      headers: mcpHeaders("any-token"),
      body: rpc("tools/list", {}),
    });
    // Reading the body at all is what CORS allowed: without it, fetch rejects with a TypeError.
    record("refused", { status: answer.status, body: await answer.json() });
  } catch (error) {
    record("refused", { network_error: String(error) });
  }
}
