// Resolves SMART Health Links with kill-the-clipboard's SHLViewer (an independent SHL client).
// argv: CASES, a JSON file [{uri, recipient, passcode?}]. Prints one JSON line per case:
// {ok: true, resourceTypes: [...], bundles: n} or {ok: false, error: name, message}.
// Trusts a test CA through NODE_EXTRA_CA_CERTS.
import { readFileSync } from 'node:fs';
import { SHLViewer } from 'kill-the-clipboard';

const cases = JSON.parse(readFileSync(process.argv[2], 'utf8'));
for (const item of cases) {
  try {
    const viewer = new SHLViewer({ shlinkURI: item.uri });
    const resolved = await viewer.resolveSHL({
      recipient: item.recipient,
      ...(item.passcode && { passcode: item.passcode }),
      ...(item.embeddedLengthMax !== undefined && { embeddedLengthMax: item.embeddedLengthMax }),
    });
    const resourceTypes = [];
    for (const bundle of resolved.fhirResources) {
      for (const entry of bundle.entry ?? []) resourceTypes.push(entry.resource.resourceType);
    }
    process.stdout.write(JSON.stringify({
      ok: true, bundles: resolved.fhirResources.length, resourceTypes,
      label: viewer.shl.label ?? null, flag: viewer.shl.flag ?? null,
    }) + '\n');
  } catch (error) {
    process.stdout.write(JSON.stringify({
      ok: false, error: error?.name ?? 'Error', message: String(error?.message ?? error),
    }) + '\n');
  }
}
