// Third-party verifiers for healthwallet credentials (driven by tests/interop/test_node_verifiers.py).
//
// Reads one JSON request on stdin:
//   {"now": ISO date, "statusListContext": {...},
//    "statusLists": {url: StatusList2021Credential (ldp)},
//    "cases": [{"name", "format": "ldp"|"jwt"|"ldp-vp"|"jwt-vp", "credential": object|compact JWS,
//               "challenge", "domain" (presentations only)}]}
// and writes one JSON array on stdout, one result per case and verifier:
//   {"name", "verifier", "verified": bool, "error": string|null, "revoked": bool|null}
//
// ldp: Digital Bazaar @digitalbazaar/vc + Ed25519Signature2018, with a static document loader
//      (security-document-loader's contexts and did:key driver, plus the StatusList2021
//      context given in the request). Anything else throws: nothing is fetched.
//      credentialStatus is checked here too (StatusList2021, from the given status lists).
// jwt: did-jwt-vc (did:key via key-did-resolver + did-resolver), and jose on its own
//      (EdDSA, the key found through the header's `kid`).
// ldp-vp: a Verifiable Presentation through @digitalbazaar/vc `verify`, which checks
//      the holder's authentication proof for the given challenge and domain and each embedded
//      credential (with its status, as for ldp).
// jwt-vp: did-jwt-vc verifyPresentation (challenge = nonce, domain = aud), then each embedded
//      JWT credential through did-jwt-vc.
//
// This file lives under tests/node/ because ESM resolves bare imports next to the importing
// file; the packages are in tests/node/node_modules.

import {gunzipSync} from 'node:zlib';

import * as vc from '@digitalbazaar/vc';
import {Ed25519Signature2018} from '@digitalbazaar/ed25519-signature-2018';
import {securityLoader} from '@digitalbazaar/security-document-loader';
import {verifyCredential as verifyJwtCredential, verifyPresentation} from 'did-jwt-vc';
import {Resolver} from 'did-resolver';
import {getResolver as keyDidResolver} from 'key-did-resolver';
import * as jose from 'jose';

const STATUS_LIST_2021_V1 = 'https://w3id.org/vc/status-list/2021/v1';

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk);
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

function makeDocumentLoader(statusListContext) {
  const loader = securityLoader();
  loader.addStatic(STATUS_LIST_2021_V1, statusListContext);
  const load = loader.build();
  return async url => {
    // security-document-loader only knows its static contexts and did:key; make the
    // no-network rule explicit all the same.
    if(!url.startsWith('did:key:') && !url.startsWith('https://') && !url.startsWith('urn:')) {
      throw new Error(`refusing to load ${url}`);
    }
    return load(url);
  };
}

// StatusList2021 §5 (validate algorithm): the bit at statusListIndex, counting from the
// left-most bit of the GZIP-decompressed, base64url-decoded encodedList.
function statusBit(encodedList, index) {
  const bits = gunzipSync(Buffer.from(encodedList, 'base64url'));
  if(bits.length < 16 * 1024) {
    throw new Error('status list is shorter than 16 KiB');
  }
  if(index < 0 || index >= bits.length * 8) {
    throw new Error('status list index out of range');
  }
  return (bits[index >> 3] >> (7 - (index & 7))) & 1;
}

function makeCheckStatus({statusLists, documentLoader, now, revokedOut}) {
  return async ({credential}) => {
    try {
      const entry = credential.credentialStatus;
      if(entry.type !== 'StatusList2021Entry') {
        throw new Error(`unsupported status type ${entry.type}`);
      }
      const listVc = statusLists[entry.statusListCredential];
      if(!listVc) {
        throw new Error('status list credential not provided');
      }
      const listResult = await vc.verifyCredential({
        credential: listVc,
        suite: new Ed25519Signature2018(),
        documentLoader,
        now
      });
      if(!listResult.verified) {
        throw new Error('status list credential does not verify: ' + errorText(listResult));
      }
      const listIssuer = typeof listVc.issuer === 'string' ? listVc.issuer : listVc.issuer.id;
      const credIssuer = typeof credential.issuer === 'string' ?
        credential.issuer : credential.issuer.id;
      if(listIssuer !== credIssuer) {
        throw new Error('status list issuer differs from credential issuer');
      }
      const subject = listVc.credentialSubject;
      if(subject.statusPurpose !== entry.statusPurpose) {
        throw new Error('status purpose mismatch');
      }
      const revoked = statusBit(subject.encodedList, Number.parseInt(entry.statusListIndex, 10));
      revokedOut.value = revoked === 1;
      return {verified: revoked === 0};
    } catch(error) {
      return {verified: false, error};
    }
  };
}

function errorText(result) {
  const errors = [];
  if(result.error) {
    const inner = result.error.errors || [result.error];
    for(const e of inner) {
      errors.push(e.message || String(e));
    }
  }
  for(const r of result.results || []) {
    if(r.error && !errors.includes(r.error.message)) {
      errors.push(r.error.message || String(r.error));
    }
  }
  if(result.statusResult && result.statusResult.error) {
    errors.push('status: ' + result.statusResult.error.message);
  }
  return errors.join('; ') || 'not verified';
}

async function verifyLdp(testCase, ctx) {
  const revokedOut = {value: null};
  const result = await vc.verifyCredential({
    credential: testCase.credential,
    suite: new Ed25519Signature2018(),
    documentLoader: ctx.documentLoader,
    now: ctx.now,
    checkStatus: makeCheckStatus({...ctx, revokedOut})
  });
  return {
    verifier: '@digitalbazaar/vc',
    verified: result.verified === true,
    error: result.verified ? null : errorText(result),
    revoked: revokedOut.value
  };
}

async function verifyDidJwtVc(jwt, ctx) {
  try {
    const nowSeconds = Math.floor(new Date(ctx.now).getTime() / 1000);
    const verified = await verifyJwtCredential(jwt, ctx.resolver, {policies: {now: nowSeconds}});
    const ok = verified.verified === true && verified.issuer === verified.payload.iss;
    return {verifier: 'did-jwt-vc', verified: ok, error: ok ? null : 'not verified', revoked: null};
  } catch(error) {
    return {verifier: 'did-jwt-vc', verified: false, error: error.message, revoked: null};
  }
}

const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

function base58Decode(text) {
  let value = 0n;
  for(const char of text) {
    const digit = B58.indexOf(char);
    if(digit < 0) {
      throw new Error('bad base58');
    }
    value = value * 58n + BigInt(digit);
  }
  const bytes = [];
  while(value > 0n) {
    bytes.unshift(Number(value & 0xffn));
    value >>= 8n;
  }
  for(const char of text) {
    if(char !== '1') {
      break;
    }
    bytes.unshift(0);
  }
  return Buffer.from(bytes);
}

async function verifyJose(jwt, ctx) {
  const verifier = 'jose';
  try {
    const header = jose.decodeProtectedHeader(jwt);
    if(header.alg !== 'EdDSA' || typeof header.kid !== 'string') {
      throw new Error('header must carry alg EdDSA and a kid');
    }
    const did = header.kid.split('#')[0];
    const payload = jose.decodeJwt(jwt);
    if(payload.iss !== did) {
      throw new Error('kid is not a key of the issuer');
    }
    const {didDocument} = await ctx.resolver.resolve(did);
    const method = (didDocument.verificationMethod || []).find(vm => vm.id === header.kid);
    const asserting = (didDocument.assertionMethod || []).some(
      ref => ref === header.kid || ref.id === header.kid);
    if(!method || !asserting) {
      throw new Error('kid is not an assertion method of the issuer');
    }
    const raw = method.publicKeyBase58 ?
      base58Decode(method.publicKeyBase58) :
      Buffer.from(method.publicKeyJwk.x, 'base64url');
    const key = await jose.importJWK(
      {kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url')}, 'EdDSA');
    await jose.compactVerify(jwt, key, {algorithms: ['EdDSA']});
    return {verifier, verified: true, error: null, revoked: null};
  } catch(error) {
    return {verifier, verified: false, error: error.message, revoked: null};
  }
}

async function verifyLdpPresentation(testCase, ctx) {
  const revokedOut = {value: null};
  const result = await vc.verify({
    presentation: testCase.credential,
    challenge: testCase.challenge,
    domain: testCase.domain,
    suite: new Ed25519Signature2018(),
    documentLoader: ctx.documentLoader,
    now: ctx.now,
    checkStatus: makeCheckStatus({...ctx, revokedOut})
  });
  const credentials = result.credentialResults || [];
  const ok = result.verified === true && credentials.length > 0 &&
    credentials.every(r => r.verified === true);
  return {
    verifier: '@digitalbazaar/vc',
    verified: ok,
    error: ok ? null :
      [errorText(result.presentationResult || result), ...credentials.map(errorText)].join('; '),
    revoked: revokedOut.value
  };
}

async function verifyJwtPresentation(testCase, ctx) {
  const verifier = 'did-jwt-vc';
  try {
    const nowSeconds = Math.floor(new Date(ctx.now).getTime() / 1000);
    const options = {
      challenge: testCase.challenge, domain: testCase.domain, policies: {now: nowSeconds}
    };
    const verified = await verifyPresentation(testCase.credential, ctx.resolver, options);
    const embedded = verified.payload.vp.verifiableCredential || [];
    if(verified.issuer !== verified.payload.iss || embedded.length === 0) {
      throw new Error('not verified');
    }
    for(const jwt of embedded) {
      await verifyJwtCredential(jwt, ctx.resolver, {policies: {now: nowSeconds}});
    }
    return {verifier, verified: true, error: null, revoked: null};
  } catch(error) {
    return {verifier, verified: false, error: error.message, revoked: null};
  }
}

const VERIFIERS = {
  ldp: async (c, ctx) => [await verifyLdp(c, ctx)],
  jwt: async (c, ctx) => [await verifyDidJwtVc(c.credential, ctx),
    await verifyJose(c.credential, ctx)],
  'ldp-vp': async (c, ctx) => [await verifyLdpPresentation(c, ctx)],
  'jwt-vp': async (c, ctx) => [await verifyJwtPresentation(c, ctx)]
};

async function main() {
  const request = await readStdin();
  const documentLoader = makeDocumentLoader(request.statusListContext);
  const ctx = {
    documentLoader,
    now: request.now,
    statusLists: request.statusLists || {},
    resolver: new Resolver(keyDidResolver())
  };
  const out = [];
  for(const testCase of request.cases) {
    const results = await VERIFIERS[testCase.format](testCase, ctx);
    for(const result of results) {
      out.push({name: testCase.name, ...result});
    }
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch(error => {
  process.stderr.write(String(error && error.stack || error) + '\n');
  process.exit(2);
});
