// docs/service.md must name every option, every metric and only real exports.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import * as service from './index.js';
import * as testing from './testing.js';
import { METRICS_DEFAULTS, ServiceMetrics } from './metrics.js';
import { SECURITY_HEADERS_DEFAULTS } from './security-headers.js';

const doc = readFileSync(fileURLToPath(new URL('../../../docs/service.md', import.meta.url)), 'utf8');

/** The first-column names of the table under `heading` (up to the next heading). */
function tableKeys(heading: string): string[] {
  const start = doc.indexOf(`\n${heading}\n`);
  assert.ok(start >= 0, `heading ${heading}`);
  const rest = doc.slice(start + heading.length + 2);
  const section = rest.slice(0, rest.search(/\n#{2,3} /) === -1 ? undefined : rest.search(/\n#{2,3} /));
  return [...section.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]!);
}

function assertDocumented(heading: string, keys: readonly string[]): void {
  const documented = tableKeys(heading);
  const missing = keys.filter((k) => !documented.includes(k));
  const extra = documented.filter((k) => !keys.includes(k));
  assert.deepEqual({ missing, extra }, { missing: [], extra: [] }, heading);
}

it('documents every option of every part', () => {
  assertDocumented('## Options', [
    ...Object.keys(service.SERVICE_DEFAULTS),
    'logger',
    'logStream',
    'https',
    'tracing',
  ]);
  assertDocumented('### Metrics options', [...Object.keys(METRICS_DEFAULTS), 'registry']);
  assertDocumented('### Rate limiting', [
    ...Object.keys(service.RATE_LIMIT_DEFAULTS),
    'keyHeader',
    'keyGenerator',
    'redisUrl',
    'redis',
  ]);
  assertDocumented('### Load shedding', [...Object.keys(service.SHEDDING_DEFAULTS), 'clock']);
  assertDocumented('### Security headers', Object.keys(SECURITY_HEADERS_DEFAULTS));
  assertDocumented('### Deadlines', ['maxMs']);
  assertDocumented('### Shutdown', [
    ...Object.keys(service.SHUTDOWN_DEFAULTS),
    'onShutdown',
    'tracing',
    'exit',
    'clock',
  ]);
});

it('documents every metric the kit registers, with its type', async () => {
  const metrics = new ServiceMetrics(
    { defaultMetrics: false, registry: new Registry() },
    { service: 's', version: 'v' },
  );
  const registered = (await metrics.registry.getMetricsAsJSON()).map((m) => ({
    name: m.name,
    type: String(m.type),
  }));
  assert.deepEqual(registered.map((m) => m.name).sort(), Object.values(service.METRIC_NAMES).sort());
  const rows = new Map(
    [...doc.matchAll(/^\| `([a-z_]+)` \| (counter|gauge|histogram) \|/gm)].map(
      (m) => [m[1]!, m[2]!] as const,
    ),
  );
  for (const { name, type } of registered) assert.equal(rows.get(name), type, name);
});

it("imports in the doc's example exist", () => {
  const imports = [...doc.matchAll(/import \{([^}]+)\} from '@bulwark\/service'/g)].flatMap((m) =>
    m[1]!.split(',').map((s) => s.trim()),
  );
  assert.ok(imports.length > 0);
  for (const name of imports) assert.ok(name in service, `${name} is exported`);
});

it('documents every export of @bulwark/service/testing, and its example imports only those', () => {
  assertDocumented('## Testing helpers', Object.keys(testing));
  const imports = [...doc.matchAll(/import \{([^}]+)\} from '@bulwark\/service\/testing'/g)].flatMap((m) =>
    m[1]!.split(',').map((s) => s.trim()),
  );
  assert.ok(imports.length > 0);
  for (const name of imports) assert.ok(name in testing, `${name} is exported by @bulwark/service/testing`);
});
