// oidc-provider configured as the providers a broker sits in front of (Entra ID and the like):
// no registration endpoint, one pre-registered confidential client (the broker), authorization
// code with PKCE S256 and refresh tokens, RFC 9207 `iss` in the authorization response, and no
// RFC 8707 `resource` (refused, as Entra v2 does, AADSTS9010010). The login and consent pages
// are oidc-provider's development interactions (any login; a Continue button).
// Started by tests/broker/conftest.py.
import Provider from 'oidc-provider';

const { PORT, REDIRECT_URI, JWKS } = process.env;
const issuer = `http://127.0.0.1:${PORT}`;

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
  claims: { openid: ['sub'], email: ['email'], profile: ['name'] },
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({ sub: id, email: `${id}@example.com`, name: id }),
  }),
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

provider.listen(Number(PORT), '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
