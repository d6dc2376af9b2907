// A real OpenID Provider (panva's oidc-provider) on 127.0.0.1 for the Portcullis tests
// (testkit/src/oidc.rs starts it).
//
// It publishes RSA, P-256 and Ed25519 keys the way providers do (the RSA key without `alg`),
// issues RFC 9068 JWT access tokens by client credentials for four resource servers (one per
// signing algorithm: RS256, PS256, ES256, EdDSA), and ID tokens and opaque access tokens by
// the authorization code flow (with PKCE, a nonce and the provider's own login and consent
// pages) to two clients: ours (`portcullis-rp`) and another application's (`other-app`), for
// the token-substitution tests. It prints one JSON line with the issuer, our client's
// credentials and the tokens, and keeps serving discovery, the JWKS and token introspection
// (RFC 7662) until its standard input closes.
import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

function jwk(type, options, kid) {
  const { privateKey } = crypto.generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid, use: 'sig' };
}
const keys = [
  jwk('rsa', { modulusLength: 2048 }, 'rsa-1'),
  jwk('ec', { namedCurve: 'P-256' }, 'ec-1'),
  jwk('ed25519', {}, 'ed-1'),
];

const resources = {
  [`${issuer}/api/rs256`]: 'RS256',
  [`${issuer}/api/ps256`]: 'PS256',
  [`${issuer}/api/es256`]: 'ES256',
  [`${issuer}/api/eddsa`]: 'EdDSA',
};
const redirectUri = 'http://127.0.0.1:9/callback';
const clientSecret = crypto.randomBytes(32).toString('base64url');
const otherSecret = crypto.randomBytes(32).toString('base64url');
const client = (client_id, client_secret) => ({
  client_id,
  client_secret,
  grant_types: ['client_credentials', 'authorization_code'],
  response_types: ['code'],
  redirect_uris: [redirectUri],
  id_token_signed_response_alg: 'PS256',
});

const provider = new Provider(issuer, {
  clients: [client('portcullis-rp', clientSecret), client('other-app', otherSecret)],
  jwks: { keys },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  enabledJWA: {
    idTokenSigningAlgValues: ['PS256', 'RS256', 'ES256', 'EdDSA'],
  },
  scopes: ['openid', 'email', 'profile', 'api:read'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'] },
  // The email and profile claims in the ID token, as Google and Okta put them there.
  conformIdTokenClaims: false,
  findAccount: async (ctx, sub) => ({
    accountId: sub,
    claims: async () => ({
      sub, email: `${sub}@example.test`, email_verified: true, name: `${sub} Example`, preferred_username: sub,
    }),
  }),
  features: {
    introspection: {
      enabled: true,
      // Any authenticated client may introspect any token, as Okta's org server lets it:
      // checking that a token was issued to us is the introspecting client's job.
      allowedPolicy: async () => true,
    },
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => false,
      getResourceServerInfo: (ctx, resource) => {
        const alg = resources[resource];
        if (!alg) throw new Error(`unknown resource ${resource}`);
        return { scope: 'api:read', audience: resource, accessTokenFormat: 'jwt', jwt: { sign: { alg } } };
      },
    },
  },
});
provider.on('server_error', (ctx, error) => console.error('server_error', error));
server.on('request', provider.callback());

const basic = (id, secret) => 'Basic ' + Buffer.from(`${id}:${secret}`).toString('base64');

async function token(form, id = 'portcullis-rp', secret = clientSecret) {
  const response = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { authorization: basic(id, secret), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(`token endpoint: ${JSON.stringify(body)}`);
  return body;
}

const accessTokens = {};
for (const [resource, alg] of Object.entries(resources)) {
  const body = await token({ grant_type: 'client_credentials', scope: 'api:read', resource });
  accessTokens[alg] = { token: body.access_token, audience: resource };
}
// Another application's JWT access token for the same resource server as our RS256 one.
const otherJwt = await token(
  { grant_type: 'client_credentials', scope: 'api:read', resource: `${issuer}/api/rs256` },
  'other-app', otherSecret,
);

// The authorization code flow through the provider's own login and consent pages.
const cookies = new Map();
async function go(url, init = {}) {
  const headers = { ...(init.headers || {}) };
  if (cookies.size) headers.cookie = [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  const response = await fetch(url, { ...init, headers, redirect: 'manual' });
  for (const cookie of response.headers.getSetCookie()) {
    const [pair] = cookie.split(';');
    const at = pair.indexOf('=');
    cookies.set(pair.slice(0, at), pair.slice(at + 1));
  }
  return response;
}
async function codeFlow(clientId, secret) {
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  const nonce = crypto.randomBytes(16).toString('base64url');
  const state = crypto.randomBytes(16).toString('base64url');
  const authorize = new URL(`${issuer}/auth`);
  authorize.search = new URLSearchParams({
    client_id: clientId, response_type: 'code', redirect_uri: redirectUri, scope: 'openid email profile',
    nonce, state, code_challenge: challenge, code_challenge_method: 'S256',
  }).toString();
  let response = await go(authorize);
  let code;
  for (let step = 0; step < 12 && !code; step += 1) {
    const location = response.headers.get('location');
    if (!location) {
      // An interaction page: submit its form (login, then consent).
      const page = await response.text();
      const action = page.match(/action="([^"]+)"/);
      if (!action) throw new Error(`no form on page ${response.url}: ${page.slice(0, 300)}`);
      const fields = new URLSearchParams();
      for (const [tag] of page.matchAll(/<input[^>]*>/g)) {
        const name = tag.match(/name="([^"]*)"/);
        const value = tag.match(/value="([^"]*)"/);
        if (name) fields.set(name[1], value ? value[1] : '');
      }
      if (fields.has('login')) { fields.set('login', 'alice'); fields.set('password', 'any'); }
      response = await go(new URL(action[1], issuer), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: fields,
      });
      continue;
    }
    const next = new URL(location, issuer);
    if (next.href.startsWith(redirectUri)) {
      if (next.searchParams.get('state') !== state) throw new Error('state mismatch');
      code = next.searchParams.get('code');
      if (!code) throw new Error(`no code: ${next}`);
    } else {
      response = await go(next);
    }
  }
  if (!code) throw new Error('the authorization code flow did not finish');
  return { ...(await token({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier }, clientId, secret)), nonce };
}
const tokens = await codeFlow('portcullis-rp', clientSecret);
const other = await codeFlow('other-app', otherSecret);

process.stdout.write(JSON.stringify({
  issuer,
  client_id: 'portcullis-rp',
  client_secret: clientSecret,
  access_tokens: accessTokens,
  id_token: tokens.id_token,
  opaque_access_token: tokens.access_token,
  nonce: tokens.nonce,
  other: {
    client_id: 'other-app',
    id_token: other.id_token,
    opaque_access_token: other.access_token,
    jwt_access_token: otherJwt.access_token,
  },
}) + '\n');

process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
