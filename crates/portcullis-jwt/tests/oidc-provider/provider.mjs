// A real OpenID Provider (panva's oidc-provider) on 127.0.0.1 for the portcullis-jwt tests.
//
// It publishes RSA, P-256 and Ed25519 keys the way providers do (the RSA key without `alg`),
// issues RFC 9068 JWT access tokens by client credentials for four resource servers (one per
// signing algorithm: RS256, PS256, ES256, EdDSA) and an ID token by the authorization code
// flow (with PKCE, a nonce and the provider's own login and consent pages), prints one JSON
// line with the issuer and the tokens, and keeps serving discovery and the JWKS until its
// standard input closes.
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

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'portcullis-rp',
    client_secret: clientSecret,
    grant_types: ['client_credentials', 'authorization_code'],
    response_types: ['code'],
    redirect_uris: [redirectUri],
    id_token_signed_response_alg: 'PS256',
  }],
  jwks: { keys },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  enabledJWA: {
    idTokenSigningAlgValues: ['PS256', 'RS256', 'ES256', 'EdDSA'],
  },
  scopes: ['openid', 'api:read'],
  findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  features: {
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

const basic = 'Basic ' + Buffer.from(`portcullis-rp:${clientSecret}`).toString('base64');

async function token(form) {
  const response = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
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
const verifier = crypto.randomBytes(32).toString('base64url');
const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
const nonce = crypto.randomBytes(16).toString('base64url');
const state = crypto.randomBytes(16).toString('base64url');
const authorize = new URL(`${issuer}/auth`);
authorize.search = new URLSearchParams({
  client_id: 'portcullis-rp', response_type: 'code', redirect_uri: redirectUri, scope: 'openid',
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
const tokens = await token({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier });

process.stdout.write(JSON.stringify({
  issuer,
  client_id: 'portcullis-rp',
  access_tokens: accessTokens,
  id_token: tokens.id_token,
  nonce,
}) + '\n');

process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
