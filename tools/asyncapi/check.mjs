// Validates an AsyncAPI document offline with the AsyncAPI parser, then (optionally)
// sample payloads against its messages: `node check.mjs asyncapi.yaml [samples.json]`,
// samples being {"message name": [payload, ...]}. Exit 1 on any error.
import { readFileSync } from 'node:fs';
import { Parser, fromFile } from '@asyncapi/parser';
import Ajv from 'ajv';

const [docPath, samplesPath] = process.argv.slice(2);
const parser = new Parser();
const { document, diagnostics } = await fromFile(parser, docPath).parse();
let failed = false;
for (const d of diagnostics) {
  const error = d.severity === 0;
  failed ||= error;
  console.error(`${error ? 'error' : 'note'} ${d.path.join('.')}: ${d.message}`);
}
if (!document) process.exit(1);
if (samplesPath) {
  const samples = JSON.parse(readFileSync(samplesPath, 'utf8'));
  const ajv = new Ajv({ strict: false, allErrors: true });
  const byName = new Map(document.components().messages().all().map((m) => [m.id(), m]));
  for (const [name, payloads] of Object.entries(samples)) {
    const message = byName.get(name);
    if (!message) {
      console.error(`error: no message ${name} in the document`);
      failed = true;
      continue;
    }
    const validate = ajv.compile(message.payload().json());
    for (const p of payloads) {
      if (!validate(p)) {
        console.error(`error: ${name} ${JSON.stringify(p)}: ${ajv.errorsText(validate.errors)}`);
        failed = true;
      }
    }
  }
  console.log(`${Object.keys(samples).length} messages checked against their samples`);
}
process.exit(failed ? 1 : 0);
