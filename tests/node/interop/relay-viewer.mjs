// Resolve a SMART Health Link with kill-the-clipboard's SHLViewer (an independent SHL client)
// and print what it got as one JSON line: {"ok": true, "resources": [resourceType…]} or
// {"ok": false, "error": ErrorClassName}. Args: shlink recipient [passcode] [embeddedLengthMax]
import { SHLViewer } from 'kill-the-clipboard';

const [shlink, recipient, passcode, embeddedLengthMax] = process.argv.slice(2);
try {
  const viewer = new SHLViewer({ shlinkURI: shlink });
  const params = { recipient };
  if (passcode) params.passcode = passcode;
  if (embeddedLengthMax !== undefined) params.embeddedLengthMax = Number(embeddedLengthMax);
  const result = await viewer.resolveSHL(params);
  const resources = result.fhirResources.map((r) => r.resourceType);
  console.log(JSON.stringify({ ok: true, resources, status: result.manifest?.status ?? null }));
} catch (error) {
  console.log(JSON.stringify({ ok: false, error: error.constructor.name, message: error.message }));
}
