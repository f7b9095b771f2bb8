/**
 * deploy/: the Kubernetes manifests and the OpenTelemetry Collector configuration, parsed and
 * cross-checked against the service itself — its configuration defaults and variable names (the built
 * config module), the health-check timeout of @bulwark/service, and the probe paths of a running
 * instance.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { HEALTH_DEFAULTS, SHUTDOWN_DEFAULTS } from '@bulwark/service';
import { DEFAULTS, listVariables, loadConfig, type GcdConfig } from '../../src/config.js';
import { createGcdServer, type GcdServer } from '../../src/server.js';
import { loadYaml, loadYamlDocuments, readRepoFile, repoPath } from './support.js';

/* eslint-disable @typescript-eslint/no-explicit-any -- Kubernetes objects are read as parsed YAML */
type K8s = Record<string, any>;

const MANIFESTS: Array<K8s & { file: string }> = readdirSync(repoPath('deploy', 'k8s'))
  .filter((f) => f.endsWith('.yaml'))
  .sort()
  .flatMap((file) => loadYamlDocuments<K8s>('deploy', 'k8s', file).map((doc) => ({ ...doc, file })));

function find(kind: string, name: string): K8s {
  const found = MANIFESTS.find((m) => m.kind === kind && m.metadata?.name === name);
  assert.ok(found !== undefined, `deploy/k8s has no ${kind} ${name}`);
  return found;
}

const deployment = find('Deployment', 'gcd-service');
const pod = deployment.spec.template.spec as K8s;
const container = (pod.containers as K8s[]).find((c) => c.name === 'gcd-service')!;
const envList = container.env as Array<{ name: string; value?: string; valueFrom?: unknown }>;
const env = Object.fromEntries(envList.map((e) => [e.name, e.value]));

/** The configuration the Deployment gives the service (Secret references replaced by a valid sample). */
function deployedConfig(): GcdConfig {
  const values: Record<string, string> = {};
  for (const e of envList) {
    if (e.value !== undefined) values[e.name] = e.value;
    else if (e.name === 'REDIS_URL') values[e.name] = 'rediss://:sample@gcd-redis:6379/0';
    else if (e.name === 'HEALTH_DETAILS_TOKEN') values[e.name] = 'sample-token-0123456789';
    else assert.fail(`env ${e.name} comes from ${JSON.stringify(e.valueFrom)}: add a sample value here`);
  }
  return loadConfig(values);
}

function cpuCores(quantity: string): number {
  return quantity.endsWith('m') ? Number(quantity.slice(0, -1)) / 1000 : Number(quantity);
}

function containerPort(name: string): number {
  const port = (container.ports as K8s[]).find((p) => p.name === name);
  assert.ok(port !== undefined, `container port ${name}`);
  return port.containerPort as number;
}

/** Node's own variables the Deployment may set (read by the runtime, not by config.ts). */
const NODE_VARIABLES = new Set(['NODE_EXTRA_CA_CERTS']);

/** The mount path of the pod volume backed by `secretName`. */
function secretMount(secretName: string): string {
  const volume = (pod.volumes as K8s[]).find((v) => v.secret?.secretName === secretName);
  assert.ok(volume !== undefined, `a volume from the ${secretName} Secret`);
  const mount = (container.volumeMounts as K8s[]).find((m) => m.name === volume.name);
  assert.ok(mount !== undefined, `${volume.name} is mounted`);
  assert.equal(mount.subPath, undefined, 'no subPath: the kubelet never updates a subPath mount');
  return mount.mountPath as string;
}

describe('deploy/k8s: the gcd-service Deployment against the service configuration', () => {
  test('every env name is a variable the service reads, and the values load', () => {
    const known = new Set(listVariables().map((v) => v.name));
    for (const { name } of envList) {
      assert.ok(
        known.has(name) || name.startsWith('OTEL_') || NODE_VARIABLES.has(name),
        `${name} is not read by gcd-service (config.ts) nor by Node`,
      );
    }
    const config = deployedConfig();
    assert.equal(config.mode, 'gcd');
    assert.ok(config.redisUrl !== undefined, 'the shared rate limit uses Redis');
    assert.ok(config.rateLimit !== undefined, 'rate limiting is on');
  });

  test('listens on every interface, on the container port, which is the default PORT', () => {
    assert.equal(env.HOST, '0.0.0.0', 'HOST=0.0.0.0: probes come from outside the pod');
    assert.equal(containerPort('https'), DEFAULTS.port);
    assert.equal(deployedConfig().port, containerPort('https'));
    assert.equal(
      Number(deployment.spec.template.metadata.annotations['prometheus.io/port']),
      containerPort('https'),
    );
    assert.equal(deployment.spec.template.metadata.annotations['prometheus.io/path'], '/metrics');
  });

  test('TLS everywhere: HTTPS from the gcd-tls Secret (mounted as a directory), Redis over rediss:// trusting the gcd-redis-tls CA (finding 11)', () => {
    const tls = secretMount('gcd-tls');
    assert.equal(env.TLS_CERT_FILE, `${tls}/tls.crt`);
    assert.equal(env.TLS_KEY_FILE, `${tls}/tls.key`);
    const config = deployedConfig();
    assert.ok(config.tls !== undefined && config.tls.watch, 'HTTPS, reloaded when the Secret changes');
    assert.equal(deployment.spec.template.metadata.annotations['prometheus.io/scheme'], 'https');
    const ca = secretMount('gcd-redis-tls');
    assert.equal(env.NODE_EXTRA_CA_CERTS, `${ca}/ca.crt`);
    assert.match(
      readRepoFile('deploy', 'k8s', 'redis.yaml'),
      /url="rediss:\/\/:\$PASSWORD@gcd-redis:6379\/0"/,
    );
    const redis = find('Deployment', 'gcd-redis');
    const args = (redis.spec.template.spec.containers[0].args as string[]).join(' ');
    assert.match(args, /--port 0 --tls-port 6379 /, 'Redis speaks TLS only');
    assert.match(args, /--tls-cert-file \S+ --tls-key-file \S+ --tls-ca-cert-file \S+/);
  });

  test('probes: startup and liveness on /livez, readiness on /readyz, over HTTPS on the https port', () => {
    for (const [probe, path] of [
      ['startupProbe', '/livez'],
      ['livenessProbe', '/livez'],
      ['readinessProbe', '/readyz'],
    ] as const) {
      assert.equal(container[probe]?.httpGet?.path, path, `${probe} path`);
      assert.equal(container[probe]?.httpGet?.port, 'https', `${probe} port`);
      assert.equal(container[probe]?.httpGet?.scheme, 'HTTPS', `${probe} scheme`);
    }
    // A readiness check may take HEALTH_DEFAULTS.checkTimeoutMs; the probe must wait longer than that.
    assert.ok(container.readinessProbe.timeoutSeconds * 1000 > HEALTH_DEFAULTS.checkTimeoutMs);
    // Liveness restarts the container: it must be more patient than readiness.
    const patience = (p: K8s) => p.periodSeconds * p.failureThreshold;
    assert.ok(patience(container.livenessProbe) > patience(container.readinessProbe));
  });

  test('shutdown: the drain outlasts a readiness period, and the grace period outlasts the shutdown deadline', () => {
    const config = deployedConfig();
    const pauseMs = ((container.lifecycle?.preStop?.sleep?.seconds as number | undefined) ?? 0) * 1000;
    // requests routed before the endpoint update still find a listening server
    assert.ok(
      pauseMs + config.drainDelayMs >= container.readinessProbe.periodSeconds * 1000,
      `preStop ${pauseMs} ms + DRAIN_DELAY_MS ${config.drainDelayMs} ms < one readiness period`,
    );
    // a handler that started at the end of the drain can still finish before the deadline
    assert.ok(
      config.shutdownTimeoutMs - config.drainDelayMs >= config.handlerTimeoutMs,
      `SHUTDOWN_TIMEOUT_MS − DRAIN_DELAY_MS < HANDLER_TIMEOUT_MS (${config.handlerTimeoutMs} ms)`,
    );
    // the service's own deadline (from SIGTERM, after any preStop) ends before the kubelet's SIGKILL
    const graceMs = (pod.terminationGracePeriodSeconds as number) * 1000;
    assert.ok(
      graceMs >= pauseMs + config.shutdownTimeoutMs + 2000,
      `grace ${graceMs} ms < preStop ${pauseMs} ms + SHUTDOWN_TIMEOUT_MS ${config.shutdownTimeoutMs} ms + 2 s`,
    );
    assert.ok(
      config.shutdownTimeoutMs >= SHUTDOWN_DEFAULTS.shutdownTimeoutMs,
      'no shorter deadline than the default',
    );
  });

  test('worker threads fit the CPU limit, and every container has requests and limits', () => {
    const config = deployedConfig();
    const limit = cpuCores(container.resources.limits.cpu);
    assert.ok(
      config.poolMaxThreads + 1 <= limit,
      `POOL_MAX_THREADS ${config.poolMaxThreads} + the event loop > ${limit} cores`,
    );
    for (const m of MANIFESTS.filter((x) => x.kind === 'Deployment')) {
      for (const c of m.spec.template.spec.containers as K8s[]) {
        for (const k of ['requests', 'limits']) {
          assert.ok(c.resources?.[k]?.cpu && c.resources?.[k]?.memory, `${m.metadata.name}/${c.name}: ${k}`);
        }
      }
    }
  });

  test('every container runs as non-root, read-only, without privilege escalation or capabilities', () => {
    for (const m of MANIFESTS.filter((x) => x.kind === 'Deployment')) {
      const spec = m.spec.template.spec as K8s;
      assert.equal(spec.securityContext?.runAsNonRoot, true, `${m.metadata.name}: runAsNonRoot`);
      assert.ok(spec.securityContext?.runAsUser > 0, `${m.metadata.name}: runAsUser`);
      assert.equal(spec.automountServiceAccountToken, false, `${m.metadata.name}: no service-account token`);
      for (const c of spec.containers as K8s[]) {
        assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${c.name}: readOnlyRootFilesystem`);
        assert.equal(
          c.securityContext?.allowPrivilegeEscalation,
          false,
          `${c.name}: allowPrivilegeEscalation`,
        );
        assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL'], `${c.name}: drop ALL`);
      }
    }
  });
});

describe('deploy/k8s: the objects fit together', () => {
  const podLabels = deployment.spec.template.metadata.labels as Record<string, string>;
  const selects = (selector: Record<string, string>) =>
    Object.entries(selector).every(([k, v]) => podLabels[k] === v);

  test('the Deployment selector, the Service, the PDB and the HPA all point at the gcd-service pods', () => {
    assert.ok(selects(deployment.spec.selector.matchLabels));
    const service = find('Service', 'gcd-service');
    assert.ok(selects(service.spec.selector));
    assert.equal(service.spec.ports[0].targetPort, 'https');
    const pdb = find('PodDisruptionBudget', 'gcd-service');
    assert.ok(selects(pdb.spec.selector.matchLabels));
    const hpa = find('HorizontalPodAutoscaler', 'gcd-service');
    assert.deepEqual(hpa.spec.scaleTargetRef, {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      name: 'gcd-service',
    });
    assert.ok(hpa.spec.minReplicas >= 2 && hpa.spec.maxReplicas > hpa.spec.minReplicas);
    // the PDB always leaves an instance serving, and a rollout never goes below the replica count
    assert.ok(pdb.spec.maxUnavailable < hpa.spec.minReplicas);
    assert.equal(deployment.spec.strategy.rollingUpdate.maxUnavailable, 0);
  });

  test('REDIS_URL comes from the gcd-redis Secret; Redis runs without persistence behind its Service', () => {
    const ref = envList.find((e) => e.name === 'REDIS_URL')?.valueFrom as K8s;
    assert.deepEqual(ref?.secretKeyRef, { name: 'gcd-redis', key: 'url' });
    const redis = find('Deployment', 'gcd-redis');
    const args = (redis.spec.template.spec.containers[0].args as string[]).join(' ');
    assert.match(args, /--save {2}--appendonly no/, 'no RDB snapshots, no AOF: buckets are reconstructable');
    assert.match(args, /--maxmemory \d+mb --maxmemory-policy allkeys-lru/);
    assert.match(args, /--requirepass \$\(REDIS_PASSWORD\)/);
    const service = find('Service', 'gcd-redis');
    assert.equal(service.spec.ports[0].port, 6379);
    // the Secret's URL as the manifest tells operators to create it
    assert.match(
      readRepoFile('deploy', 'k8s', 'redis.yaml'),
      /url="rediss:\/\/:\$PASSWORD@gcd-redis:6379\/0"/,
    );
    const policy = find('NetworkPolicy', 'gcd-redis');
    assert.deepEqual(policy.spec.ingress[0].from[0].podSelector.matchLabels, {
      'app.kubernetes.io/name': 'gcd-service',
    });
  });
});

describe('deploy/otel-collector.yaml', () => {
  const otel = loadYaml<K8s>('deploy', 'otel-collector.yaml');

  test('receives OTLP/HTTP on the port the Deployment exports to', () => {
    const endpoint = new URL(env.OTEL_EXPORTER_OTLP_ENDPOINT!);
    assert.equal(endpoint.hostname, 'otel-collector');
    const http = otel.receivers.otlp.protocols.http.endpoint as string;
    assert.equal(http.split(':').at(-1), endpoint.port);
    assert.equal(env.OTEL_TRACES_EXPORTER, 'otlp');
  });

  test('the traces pipeline uses only defined components, memory_limiter first and batch last', () => {
    const traces = otel.service.pipelines.traces as Record<string, string[]>;
    for (const kind of ['receivers', 'processors', 'exporters'] as const) {
      assert.ok(traces[kind]!.length > 0, kind);
      for (const name of traces[kind]!) assert.ok(name in otel[kind], `${kind}.${name} is not defined`);
    }
    assert.equal(traces.processors![0], 'memory_limiter');
    assert.equal(traces.processors!.at(-1), 'batch');
    for (const ext of otel.service.extensions as string[]) assert.ok(ext in otel.extensions, ext);
  });
});

describe('the probe paths answer on a running gcd-service', () => {
  let server: GcdServer;
  let base: string;
  before(async () => {
    server = await createGcdServer({ ...loadConfig({}), port: 0, logLevel: 'silent' });
    base = await server.listen();
  });
  after(() => server?.close());

  test('/livez and /readyz answer 200, /metrics serves the exposition', async () => {
    const paths = new Set([container.startupProbe.httpGet.path, container.livenessProbe.httpGet.path]);
    paths.add(container.readinessProbe.httpGet.path);
    for (const path of paths) {
      const res = await fetch(`${base}${path}`);
      await res.arrayBuffer();
      assert.equal(res.status, 200, path);
    }
    const metrics = await fetch(
      `${base}${deployment.spec.template.metadata.annotations['prometheus.io/path']}`,
    );
    assert.match(await metrics.text(), /# TYPE http_server_request_duration_seconds histogram/);
  });
});
