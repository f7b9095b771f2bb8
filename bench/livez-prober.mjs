#!/usr/bin/env node
// A fresh-connection probe in its own process (gcd-bench-lib.mjs' probeProcess): the load generator's
// event loop, busy sending thousands of requests a second, would otherwise add its own lag to every probe.
// argv: origin path everyMs. Probes until stdin closes, then writes the latencies (ms; failures null) as
// JSON on stdout and exits.
import { freshConnectionProbe } from './gcd-bench-lib.mjs';

const [origin, path, everyMs] = process.argv.slice(2);
if (!origin || !path || !(Number(everyMs) > 0)) {
  console.error('usage: livez-prober.mjs <origin> <path> <everyMs>');
  process.exit(2);
}
const probe = freshConnectionProbe(origin, path, Number(everyMs));
process.stdin.resume();
process.stdin.on('end', async () => {
  const latencies = await probe.stop();
  process.stdout.write(JSON.stringify(latencies.map((x) => (Number.isFinite(x) ? x : null))));
  process.exit(0);
});
