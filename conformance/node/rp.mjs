// A relying party built on openid-client (a certified OpenID Connect RP
// library), driven by conformance/openid_client_test.go. It speaks one JSON
// object per line:
//
//   in:  {"issuer", "client_id", "client_secret", "redirect_uri", "acr_values"?}
//        (or the same object as argv[2]; the Go test uses stdin so that the
//        secret is not on a command line)
//   out: {"rp", "authorize_url"}
//   in:  the URL the browser was redirected to (https://rp.example/cb?code=…)
//   out: {"id_token": claims}, {"userinfo": claims}, {"refreshed_id_token": claims}
//
// Any failure ends the process with a non-zero status and the error on
// stderr. The test issuer is http://127.0.0.1, hence allowInsecureRequests.

import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import * as client from 'openid-client';

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })[Symbol.asyncIterator]();

async function readLine(what) {
  const { value, done } = await lines.next();
  if (done) throw new Error(`stdin closed while waiting for ${what}`);
  return value;
}

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

// The claims the test checks; the rest of the ID token is openid-client's to validate.
function pick(claims) {
  const { sub, acr, amr, auth_time, nonce, iss, aud, sid } = claims;
  return { sub, acr, amr, auth_time, nonce, iss, aud, sid };
}

async function main() {
  const cfg = JSON.parse(process.argv[2] ?? (await readLine('the configuration')));
  for (const k of ['issuer', 'client_id', 'client_secret', 'redirect_uri']) {
    if (!cfg[k]) throw new Error(`configuration lacks ${k}`);
  }
  const pkg = JSON.parse(await readFile(new URL('./node_modules/openid-client/package.json', import.meta.url), 'utf8'));

  // Discovery checks that the document's issuer is the one asked for (OIDC Discovery §4.3).
  const config = await client.discovery(
    new URL(cfg.issuer),
    cfg.client_id,
    cfg.client_secret,
    client.ClientSecretBasic(cfg.client_secret), // the test client is registered with client_secret_basic
    { execute: [client.allowInsecureRequests] },
  );

  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const params = {
    redirect_uri: cfg.redirect_uri,
    scope: 'openid profile offline_access',
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  };
  if (cfg.acr_values) params.acr_values = cfg.acr_values;
  emit({
    rp: `openid-client/${pkg.version} node/${process.version}`,
    authorize_url: client.buildAuthorizationUrl(config, params).href,
  });

  const callback = new URL((await readLine('the callback URL')).trim());
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: codeVerifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  emit({ id_token: pick(claims) });

  // OIDC Core §5.3.2: the UserInfo sub must equal the ID token's; fetchUserInfo checks it.
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  emit({ userinfo });

  if (!tokens.refresh_token) throw new Error('no refresh_token in the token response');
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  const refreshedClaims = refreshed.claims();
  if (!refreshedClaims) throw new Error('no id_token in the refresh response');
  emit({ refreshed_id_token: pick(refreshedClaims) });
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
  process.stdin.destroy(); // let the process end without waiting for stdin to close
}
