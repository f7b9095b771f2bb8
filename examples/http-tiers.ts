// The HTTP client and its tiers: fresh cache, primary, fallback mirrors, stale cache, explicit failure.
// Two local servers play the origin and its mirror; the wall clock is moved, not waited for.
//
//   node examples/http-tiers.ts           (from the repository, after `npm run build`; with a
//   Node older than 22.19 on PATH: `npx node examples/http-tiers.ts`)
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AllSourcesFailedError } from '@bulwark/core';
import { createHttpClient } from '@bulwark/http';

async function serve(body: string): Promise<{ server: Server; url: string }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60, stale-if-error=3600' });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/doc` };
}
const close = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));

const primary = await serve('from the primary');
const mirror = await serve('from the mirror');
let now = Date.now();
const client = createHttpClient({ totalTimeoutMs: 5_000, retry: { maxAttempts: 2 }, now: () => now });
const uncached = createHttpClient({ retry: false, cache: false });
const get = async (label: string) => {
  const res = await client.get(primary.url, { fallbackUrls: [mirror.url] });
  const tier = res.source === res.tier ? res.tier : `${res.tier} (${res.source})`;
  console.log(`${label}: ${tier} ${res.status} "${res.body.toString()}"`);
};

try {
  await get('1'); // primary
  await get('2'); // fresh-cache: stored, max-age=60
  now += 120_000; // two minutes later the copy is stale…
  await close(primary.server); // …and the primary is down
  await get('3'); // fallback: the mirror answers
  now += 120_000;
  await close(mirror.server); // now everything is down
  await get('4'); // stale-cache: within stale-if-error
  try {
    await uncached.get(primary.url, { fallbackUrls: [mirror.url] });
  } catch (error) {
    if (!(error instanceof AllSourcesFailedError)) throw error;
    console.log(`5: no cache, nothing answers: ${error.code}`); // the explicit failure, with every tier's story
  }
} finally {
  await client.close();
  await uncached.close();
}
