// Issues SMART Health Links with kill-the-clipboard (SHL + SHLManifestBuilder) and serves them
// over HTTPS on 127.0.0.1, as an independently written SHL sharing server would.
//
// argv: CERT KEY SPEC; SPEC is a JSON file {links: [{label?, flag?, passcode?, expiresIn?,
// location?: bool, bundle}]}. Prints one JSON line {links: [uri…]} once listening, then serves
// until stdin closes. A wrong passcode gets 401 {remainingAttempts}; unknown paths get 404.
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { SHL, SHLManifestBuilder } from 'kill-the-clipboard';

const [cert, key, specFile] = process.argv.slice(2);
const input = JSON.parse(readFileSync(specFile, 'utf8'));
const files = new Map();
const links = new Map();

const server = https.createServer({ cert: readFileSync(cert), key: readFileSync(key) });
server.listen(0, '127.0.0.1', async () => {
  const base = `https://localhost:${server.address().port}`;
  const uris = [];
  for (const spec of input.links) {
    const shl = SHL.generate({
      baseManifestURL: `${base}/shl/`,
      manifestPath: '/manifest.json',
      label: spec.label,
      flag: spec.flag,
      expirationDate: spec.expiresIn !== undefined
        ? new Date(Date.now() + spec.expiresIn * 1000) : undefined,
    });
    const builder = new SHLManifestBuilder({
      shl,
      uploadFile: async (content) => { const p = `f${files.size}`; files.set(p, content); return p; },
      getFileURL: async (path) => `${base}/files/${path}`,
      loadFile: async (path) => files.get(path),
    });
    await builder.addFHIRResource({ content: spec.bundle });
    links.set(new URL(shl.url).pathname, { builder, spec, attempts: 3 });
    uris.push(shl.toURI());
  }
  process.stdout.write(JSON.stringify({ links: uris }) + '\n');
});

server.on('request', (req, res) => {
  let body = '';
  req.on('data', (chunk) => { body += chunk; });
  req.on('end', async () => {
    const path = new URL(req.url, 'https://x').pathname;
    const reply = (status, value) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(value));
    };
    if (req.method === 'GET' && path.startsWith('/files/') && files.has(path.slice(7))) {
      res.writeHead(200, { 'Content-Type': 'application/jose' });
      res.end(files.get(path.slice(7)));
      return;
    }
    const link = links.get(path);
    if (req.method !== 'POST' || !link) { reply(404, {}); return; }
    const request = JSON.parse(body || '{}');
    if (link.spec.passcode && request.passcode !== link.spec.passcode) {
      link.attempts -= 1;
      reply(401, { remainingAttempts: Math.max(link.attempts, 0) });
      return;
    }
    try {
      const limit = link.spec.location ? 0 : request.embeddedLengthMax;
      reply(200, await link.builder.buildManifest({ embeddedLengthMax: limit }));
    } catch (error) {
      reply(404, {});
    }
  });
});

process.stdin.on('end', () => server.close(() => process.exit(0)));
process.stdin.resume();
