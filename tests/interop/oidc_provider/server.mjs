// oidc-provider (the certified OpenID Connect server) configured for the interop tests:
// client_credentials, RFC 8707 resource indicators (JWT access tokens for RESOURCE_JWT,
// opaque ones for RESOURCE_OPAQUE), introspection and revocation. Started by conftest.py.
import Provider, { errors } from 'oidc-provider';

const { PORT, RESOURCE_JWT, RESOURCE_OPAQUE, JWKS } = process.env;
const issuer = `http://127.0.0.1:${PORT}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'mcp-client',
      client_secret: 'mcp-client-secret',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
    },
    {
      client_id: 'resource-server',
      client_secret: 'resource-server-secret',
      grant_types: [],
      redirect_uris: [],
      response_types: [],
    },
  ],
  jwks: JSON.parse(JWKS),
  scopes: ['mcp'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true, allowedPolicy: async () => true },
    revocation: { enabled: true, allowedPolicy: async () => true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => RESOURCE_JWT,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resourceIndicator) => {
        if (resourceIndicator === RESOURCE_JWT) {
          return {
            scope: 'mcp', audience: RESOURCE_JWT, accessTokenTTL: 300,
            accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } },
          };
        }
        if (resourceIndicator === RESOURCE_OPAQUE) {
          return { scope: 'mcp', audience: RESOURCE_OPAQUE, accessTokenTTL: 300, accessTokenFormat: 'opaque' };
        }
        throw new errors.InvalidTarget();
      },
    },
  },
});

provider.listen(Number(PORT), '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
