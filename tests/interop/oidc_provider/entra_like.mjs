// oidc-provider configured as the providers a broker sits in front of (Entra ID and the like):
// no registration endpoint, one pre-registered confidential client (the broker), authorization
// code with PKCE S256 and refresh tokens, RFC 9207 `iss` in the authorization response, and no
// RFC 8707 `resource` (refused, as Entra v2 does, AADSTS9010010). The login and consent pages
// are oidc-provider's development interactions (any login; a Continue button).
// Its URLs are shaped as Entra's: the issuer `<origin>/<tenant>/v2.0`, its discovery document
// under it, `/<tenant>/oauth2/v2.0/authorize` and `/token`, `/<tenant>/discovery/v2.0/keys`; the
// same endpoints under `/organizations` (a multi-tenant app's), and ID tokens carrying `tid` and
// `oid`. Started by tests/broker/conftest.py.
import http from 'node:http';
import Provider from 'oidc-provider';

const { PORT, REDIRECT_URI, JWKS, TENANT } = process.env;
const issuer = `http://127.0.0.1:${PORT}/${TENANT}/v2.0`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'broker',
      client_secret: 'broker-secret',
      grant_types: ['authorization_code', 'refresh_token'],
      redirect_uris: [REDIRECT_URI],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: JSON.parse(JWKS),
  scopes: ['openid', 'profile', 'email', 'offline_access'],
  claims: { openid: ['sub', 'tid', 'oid'], email: ['email'], profile: ['name'] },
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({ sub: id, tid: TENANT, oid: `oid-${id}`, email: `${id}@example.com`, name: id }),
  }),
  routes: {
    authorization: `/${TENANT}/oauth2/v2.0/authorize`,
    token: `/${TENANT}/oauth2/v2.0/token`,
    jwks: `/${TENANT}/discovery/v2.0/keys`,
    userinfo: '/oidc/userinfo',
  },
  conformIdTokenClaims: false, // the scopes' claims in the ID token, as Entra's
  pkce: { required: () => true },
  issueRefreshToken: async () => true,
  features: {
    devInteractions: { enabled: true },
    registration: { enabled: false },
    resourceIndicators: { enabled: false },
  },
});
provider.proxy = false;

const handle = provider.callback();
http.createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (url.pathname.endsWith('/oauth2/v2.0/authorize') && url.searchParams.has('resource')) {
    // Entra v2 refuses RFC 8707 `resource`.
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'invalid_request', error_description: 'AADSTS9010010: resource is not supported' }));
    return;
  }
  url.pathname = url.pathname
    .replace(`/${TENANT}/v2.0/.well-known/`, '/.well-known/')
    .replace(/^\/organizations\//, `/${TENANT}/`);
  req.url = url.pathname + url.search;
  handle(req, res);
}).listen(Number(PORT), '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
