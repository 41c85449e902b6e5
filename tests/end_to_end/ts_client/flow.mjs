// The MCP TypeScript SDK client (the one MCP Inspector and VS Code use) through the whole
// OAuth flow against a protected MCP server: discovery, dynamic registration, PKCE
// authorization, token, a tool call, refresh, and a step-up to a larger scope.
// Usage: node flow.mjs MCP_URL; prints one JSON object per step for the Python test to check.
// BROWSER=url: the authorization URL goes to that helper, which plays the user's browser (a
// consent page, a provider's login) and answers with the redirect's parameters as JSON.
// CLIENT_METADATA_URL=url: the client is its metadata document (no registration).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { auth, UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";

const url = new URL(process.argv[2]);
const REDIRECT = "http://127.0.0.1:5999/callback";
const { BROWSER, CLIENT_METADATA_URL } = process.env;
const report = (step, data) => console.log(JSON.stringify({ step, ...data }));

// An in-memory OAuthClientProvider. Instead of a browser, `redirectToAuthorization` follows
// the authorization URL itself: the local authorization server approves at once and
// redirects to REDIRECT with the code.
class Provider {
  constructor() {
    this.registrations = [];
    this.authorizations = [];
  }
  get redirectUrl() { return REDIRECT; }
  get clientMetadata() {
    return {
      client_name: "ts-sdk-test",
      redirect_uris: [REDIRECT],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  get clientMetadataUrl() { return CLIENT_METADATA_URL || undefined; }
  state() { return "st-" + Math.random().toString(36).slice(2); }
  clientInformation() { return this.info; }
  saveClientInformation(info) { this.info = info; this.registrations.push(info); }
  tokens() { return this.saved; }
  saveTokens(tokens) { this.saved = tokens; }
  async redirectToAuthorization(authorizationUrl) {
    this.authorizations.push(Object.fromEntries(authorizationUrl.searchParams));
    if (BROWSER) {
      const answer = await (await fetch(`${BROWSER}?${new URLSearchParams({ url: authorizationUrl.href })}`)).json();
      this.code = answer.code;
      return;
    }
    const response = await fetch(authorizationUrl, { redirect: "manual" });
    const location = new URL(response.headers.get("location"));
    this.code = location.searchParams.get("code");
  }
  saveCodeVerifier(verifier) { this.verifier = verifier; }
  codeVerifier() { return this.verifier; }
  invalidateCredentials(which) {
    if (which === "all" || which === "tokens") this.saved = undefined;
    if (which === "all" || which === "client") this.info = undefined;
  }
}

async function connect(provider) {
  const transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
  const client = new Client({ name: "ts-sdk-test", version: "1.0.0" });
  try {
    await client.connect(transport);
    return client;
  } catch (error) {
    if (!(error instanceof UnauthorizedError)) throw error;
    await transport.finishAuth(provider.code); // the code the authorization redirect carried
    return connect(provider);
  }
}

const provider = new Provider();
let client = await connect(provider);
report("authorized", {
  registration: provider.registrations[0],
  authorization: provider.authorizations[0],
  scope: provider.saved.scope,
});
report("whoami", { result: (await client.callTool({ name: "whoami", arguments: {} })).structuredContent });

const before = provider.saved.access_token;
const refreshed = await auth(provider, { serverUrl: url });
report("refresh", { result: refreshed, new_token: provider.saved.access_token !== before });
report("whoami", { result: (await client.callTool({ name: "whoami", arguments: {} })).structuredContent });

// Step-up. The 1.x SDK answers 403 insufficient_scope by refreshing with the larger scope,
// which RFC 6749 §6 does not allow, and then gives up.
let denied;
try {
  await client.callTool({ name: "delete_notes", arguments: {} });
} catch (error) {
  denied = String(error.message || error);
}
report("step-up denied", { error: denied });
// What an application does instead: authorize again for the challenged scope through auth().
provider.invalidateCredentials("tokens");
const redirected = await auth(provider, { serverUrl: url, scope: "mcp notes:delete" });
const authorized = await auth(provider, { serverUrl: url, authorizationCode: provider.code });
report("step-up", { redirected, authorized, scope: provider.saved.scope });
client = await connect(provider);
report("delete_notes", { result: (await client.callTool({ name: "delete_notes", arguments: {} })).structuredContent });
await client.close();
