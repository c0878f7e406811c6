// A FAPI 2.0 client built on oauth4webapi (a certified OAuth 2 / OpenID
// Connect client library that implements PAR, private_key_jwt and DPoP),
// driven by conformance/oauth4webapi_test.go. It speaks one JSON object per
// line:
//
//   in:  {"issuer", "client_id", "private_jwk", "redirect_uri", "acr_values"?, "api_url"?}
//   out: {"rp", "request_uri", "authorize_url", "dpop_jwk"}
//   in:  the URL the browser was redirected to (https://rp.example/cb?code=…&iss=…)
//   out: {"id_token": claims, "token_type", "access_token", "refresh_token"}
//   out: {"api": {"status", "body"}}            (when api_url is given)
//   out: {"userinfo": claims}
//   out: {"refreshed_id_token": claims, "refreshed_token_type", "refreshed_access_token"}
//   out: {"api_after_refresh": {"status", "body"}} (when api_url is given)
//
// Every request carries a DPoP proof of one key pair made here; the
// authorization request is pushed (RFC 9126) and the browser gets only its
// request_uri. oauth4webapi checks the iss authorization response parameter
// (RFC 9207), the ID token, at_hash and the token_type DPoP. Any failure ends
// the process with a non-zero status and the error on stderr. The test issuer
// is http://127.0.0.1, hence allowInsecureRequests.

import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import * as oauth from 'oauth4webapi';

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })[Symbol.asyncIterator]();

async function readLine(what) {
  const { value, done } = await lines.next();
  if (done) throw new Error(`stdin closed while waiting for ${what}`);
  return value;
}

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function pick(claims) {
  const { sub, acr, amr, auth_time, nonce, iss, aud, sid } = claims;
  return { sub, acr, amr, auth_time, nonce, iss, aud, sid };
}

const insecure = { [oauth.allowInsecureRequests]: true };

// withNonce runs a request once more when the server asks for a DPoP nonce
// (RFC 9449 §8): the DPoP handle has then cached the nonce it sent.
async function withNonce(send) {
  try {
    return await send();
  } catch (err) {
    if (oauth.isDPoPNonceError(err)) return await send();
    throw err;
  }
}

async function callAPI(url, accessToken, DPoP) {
  const res = await withNonce(async () => {
    const r = await oauth.protectedResourceRequest(accessToken, 'GET', new URL(url), new Headers(), null, { DPoP, ...insecure });
    return r;
  });
  return { status: res.status, body: await res.text(), www_authenticate: res.headers.get('www-authenticate') };
}

async function main() {
  const cfg = JSON.parse(process.argv[2] ?? (await readLine('the configuration')));
  for (const k of ['issuer', 'client_id', 'private_jwk', 'redirect_uri']) {
    if (!cfg[k]) throw new Error(`configuration lacks ${k}`);
  }
  const pkg = JSON.parse(await readFile(new URL('./node_modules/oauth4webapi/package.json', import.meta.url), 'utf8'));

  const issuer = new URL(cfg.issuer);
  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure }));
  if (!as.pushed_authorization_request_endpoint) throw new Error('discovery lacks pushed_authorization_request_endpoint');
  if (!as.authorization_response_iss_parameter_supported) throw new Error('discovery lacks authorization_response_iss_parameter_supported');

  // FAPI 2.0 §5.4.1: ES256 ID tokens; oauth4webapi refuses any other alg.
  const client = { client_id: cfg.client_id, id_token_signed_response_alg: 'ES256' };
  const { d, ...pub } = cfg.private_jwk;
  const privateKey = await crypto.subtle.importKey('jwk', cfg.private_jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  const clientAuth = oauth.PrivateKeyJwt({ key: privateKey, kid: pub.kid });

  const keys = await oauth.generateKeyPair('ES256');
  const DPoP = oauth.DPoP(client, keys);
  const jwk = await crypto.subtle.exportKey('jwk', keys.publicKey);

  const codeVerifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const nonce = oauth.generateRandomNonce();
  const params = new URLSearchParams({
    redirect_uri: cfg.redirect_uri,
    response_type: 'code',
    scope: 'openid profile offline_access',
    code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  if (cfg.acr_values) params.set('acr_values', cfg.acr_values);

  const par = await withNonce(async () =>
    oauth.processPushedAuthorizationResponse(as, client,
      await oauth.pushedAuthorizationRequest(as, client, clientAuth, params, { DPoP, ...insecure })));
  const authorize = new URL(as.authorization_endpoint);
  authorize.searchParams.set('client_id', client.client_id);
  authorize.searchParams.set('request_uri', par.request_uri);
  emit({ rp: `oauth4webapi/${pkg.version} node/${process.version}`, request_uri: par.request_uri, authorize_url: authorize.href, dpop_jwk: jwk });

  const callback = new URL((await readLine('the callback URL')).trim());
  const auth = oauth.validateAuthResponse(as, client, callback, state);
  const tokens = await withNonce(async () =>
    oauth.processAuthorizationCodeResponse(as, client,
      await oauth.authorizationCodeGrantRequest(as, client, clientAuth, auth, cfg.redirect_uri, codeVerifier, { DPoP, ...insecure }),
      { expectedNonce: nonce, requireIdToken: true }));
  const claims = oauth.getValidatedIdTokenClaims(tokens);
  emit({ id_token: pick(claims), token_type: tokens.token_type, access_token: tokens.access_token, refresh_token: tokens.refresh_token });

  if (cfg.api_url) emit({ api: await callAPI(cfg.api_url, tokens.access_token, DPoP) });

  const info = await withNonce(async () =>
    oauth.processUserInfoResponse(as, client, claims.sub,
      await oauth.userInfoRequest(as, client, tokens.access_token, { DPoP, ...insecure })));
  emit({ userinfo: info });

  if (!tokens.refresh_token) throw new Error('no refresh_token in the token response');
  const refreshed = await withNonce(async () =>
    oauth.processRefreshTokenResponse(as, client,
      await oauth.refreshTokenGrantRequest(as, client, clientAuth, tokens.refresh_token, { DPoP, ...insecure })));
  const refreshedClaims = oauth.getValidatedIdTokenClaims(refreshed);
  if (!refreshedClaims) throw new Error('no id_token in the refresh response');
  emit({ refreshed_id_token: pick(refreshedClaims), refreshed_token_type: refreshed.token_type, refreshed_access_token: refreshed.access_token });

  if (cfg.api_url) emit({ api_after_refresh: await callAPI(cfg.api_url, refreshed.access_token, DPoP) });
}

function describe(err) {
  let msg = `${err?.name ?? 'Error'}: ${err?.message ?? err}`;
  if (err?.code) msg += ` [${err.code}]`;
  if (err?.error) msg += ` error=${err.error}`;
  if (err?.error_description) msg += ` error_description=${err.error_description}`;
  if (err?.cause) msg += `\ncause: ${err.cause instanceof Error ? err.cause.message : JSON.stringify(err.cause)}`;
  return msg;
}

try {
  await main();
} catch (err) {
  process.stderr.write(describe(err) + '\n');
  process.exitCode = 1;
} finally {
  process.stdin.destroy();
}
