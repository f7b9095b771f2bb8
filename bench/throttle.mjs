// Client-side adaptive throttling against an overloaded backend, over real HTTP. A local node:http server
// accepts at most CAPACITY requests per second (a token bucket) and answers 503 to the rest; the client
// offers OFFERED requests per second (open loop, 10 × capacity: the backend refuses 90 %) through raw
// undici.request and through @bulwark/core's adaptiveThrottle (k = 2). It reports, in the overloaded
// steady state, the requests that reached the backend per accepted one (the SRE book's "about k"), and,
// once the backend heals (accepts everything), the seconds until the client is back at its full rate.
// Writes results/throttle.md.
//
// Usage: node bench/throttle.mjs [offeredPerSecond=500] [overloadSeconds=45] [healSeconds=40]
// The server is pinned to CPU 0 and the client to CPU 1 with taskset when there are two CPUs.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { canPin, fmt, machineLine } from './lib.mjs';

const self = fileURLToPath(import.meta.url);
const here = fileURLToPath(new URL('.', import.meta.url));
/** Seconds the steady state is measured over, at the end of the overload. */
const STEADY_SECONDS = 15;
/** Width of the time slices recorded, in ms. */
const SLICE_MS = 250;

const mode = process.argv[2];
if (mode === '--serve') serve(Number(process.argv[3]));
else if (mode === '--client') await client(JSON.parse(process.argv[3]));
else await orchestrate();

// ---------------------------------------------------------------------------------------------------------

function serve(capacity) {
  let healed = false;
  let tokens = capacity / 10;
  let at = performance.now();
  let requests = 0;
  let accepted = 0;
  const server = createServer((req, res) => {
    if (req.url === '/heal') {
      healed = true;
      return res.end();
    }
    if (req.url === '/overload') {
      healed = false;
      return res.end();
    }
    if (req.url === '/stats') {
      res.end(JSON.stringify({ requests, accepted }));
      requests = accepted = 0;
      return;
    }
    requests++;
    const now = performance.now();
    tokens = Math.min(capacity / 10, tokens + ((now - at) * capacity) / 1000);
    at = now;
    if (healed || tokens >= 1) {
      if (!healed) tokens -= 1;
      accepted++;
      res.end('ok');
    } else {
      res.statusCode = 503;
      res.end('overloaded');
    }
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
}

// ---------------------------------------------------------------------------------------------------------

async function client({ port, offered, overloadSeconds, healSeconds, variant, windowMs }) {
  const { Agent, request } = await import('undici');
  const bw = await import('@bulwark/core');
  const dispatcher = new Agent({ connections: 128, keepAliveTimeout: 60_000 });
  const base = `http://127.0.0.1:${port}`;
  const control = async (path) => {
    const res = await request(base + path, { dispatcher });
    return res.body.text();
  };
  const get = async () => {
    const res = await request(`${base}/`, { dispatcher });
    await res.body.dump();
    if (res.statusCode >= 500)
      throw Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode });
    return res.statusCode;
  };
  const throttle =
    variant === 'raw'
      ? undefined
      : bw.adaptiveThrottle({ k: 2, random: bw.seededRandom(1), ...(windowMs ? { windowMs } : {}) });
  await control('/overload');
  await control('/stats');

  const totalMs = (overloadSeconds + healSeconds) * 1000;
  const slices = Array.from({ length: Math.ceil(totalMs / SLICE_MS) + 1 }, () => ({
    offered: 0,
    reached: 0,
    accepted: 0,
  }));
  const start = performance.now();
  let sent = 0;
  let healedAt = Infinity;
  let inFlight = 0;
  let serverAtHeal;
  const one = () => {
    const slice = slices[Math.floor((performance.now() - start) / SLICE_MS)];
    if (slice === undefined) return;
    slice.offered++;
    inFlight++;
    const call = throttle === undefined ? get() : throttle.execute(get);
    call
      .then(
        () => {
          slice.reached++;
          slice.accepted++;
        },
        (error) => {
          if (error?.code !== 'BULWARK_ERR_THROTTLED') slice.reached++;
        },
      )
      .finally(() => inFlight--);
  };
  await new Promise((resolve) => {
    const timer = setInterval(() => {
      const elapsed = performance.now() - start;
      if (elapsed >= totalMs) {
        clearInterval(timer);
        resolve();
        return;
      }
      if (elapsed >= overloadSeconds * 1000 && healedAt === Infinity) {
        healedAt = elapsed;
        control('/stats').then((s) => (serverAtHeal = JSON.parse(s)));
        control('/heal');
      }
      const due = Math.floor((elapsed * offered) / 1000);
      for (; sent < due; sent++) one();
    }, 5);
  });
  while (inFlight > 0) await new Promise((r) => setTimeout(r, 10));
  const serverAfter = JSON.parse(await control('/stats'));
  await dispatcher.close();
  process.stdout.write(JSON.stringify({ slices, healedAt, serverAtHeal, serverAfter }));
}

// ---------------------------------------------------------------------------------------------------------

async function orchestrate() {
  const args = process.argv.slice(2).map(Number);
  const offered = args[0] || 500;
  const overloadSeconds = args[1] || 45;
  const healSeconds = args[2] || 40;
  const capacity = offered / 10;
  const pin = canPin();
  const node = process.execPath;
  const server = spawn(
    pin ? 'taskset' : node,
    [...(pin ? ['-c', '0', node] : []), self, '--serve', String(capacity)],
    {
      cwd: here,
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const [chunk] = await once(server.stdout, 'data');
  const port = Number(String(chunk).trim());
  const runs = {};
  try {
    const variants = [
      { name: 'raw undici.request (no throttle)', variant: 'raw', overloadSeconds: 20, healSeconds: 5 },
      {
        name: 'adaptiveThrottle (k = 2, window 30 s: the defaults)',
        variant: 'throttle',
        overloadSeconds,
        healSeconds,
      },
      {
        name: 'adaptiveThrottle (k = 2, window 10 s)',
        variant: 'throttle',
        windowMs: 10_000,
        overloadSeconds: Math.max(20, Math.round(overloadSeconds / 2)),
        healSeconds: Math.max(15, Math.round(healSeconds / 2)),
      },
    ];
    for (const v of variants) {
      process.stderr.write(`throttle: ${v.name} (${v.overloadSeconds + v.healSeconds} s)\n`);
      const cmd = pin ? ['taskset', ['-c', '1', node]] : [node, []];
      const json = execFileSync(
        cmd[0],
        [...cmd[1], self, '--client', JSON.stringify({ port, offered, ...v })],
        {
          cwd: here,
          encoding: 'utf8',
          maxBuffer: 1 << 26,
          timeout: 600_000,
        },
      );
      runs[v.name] = { ...v, ...JSON.parse(json) };
    }
  } finally {
    server.stdin.end();
    server.kill();
  }
  const md = report(runs, { offered, capacity, pin });
  writeFileSync(new URL('results/throttle.md', import.meta.url), md);
  process.stdout.write(md);
}

function analyse(run, offered) {
  const perSecond = 1000 / SLICE_MS;
  const overloadSlices = Math.floor((run.overloadSeconds * 1000) / SLICE_MS);
  const steady = run.slices.slice(overloadSlices - STEADY_SECONDS * perSecond, overloadSlices);
  const sum = (xs, k) => xs.reduce((a, s) => a + s[k], 0);
  const reached = sum(steady, 'reached');
  const accepted = sum(steady, 'accepted');
  const offeredSteady = sum(steady, 'offered');
  // recovery: the first time after the heal from which every 1 s window has ≥ 95 % of the offered calls
  // reaching the backend
  const healSlice = Math.floor(run.healedAt / SLICE_MS);
  let recoveredAt;
  const windows = [];
  for (let i = healSlice; i + perSecond <= run.slices.length - 1; i++) {
    const w = run.slices.slice(i, i + perSecond);
    windows.push({ i, ok: sum(w, 'reached') >= 0.95 * sum(w, 'offered') && sum(w, 'offered') > 0 });
  }
  for (let j = 0; j < windows.length; j++) {
    if (windows.slice(j).every((w) => w.ok)) {
      recoveredAt = ((windows[j].i - healSlice) * SLICE_MS) / 1000;
      break;
    }
  }
  return {
    reachedPerSecond: reached / STEADY_SECONDS,
    acceptedPerSecond: accepted / STEADY_SECONDS,
    offeredPerSecond: offeredSteady / STEADY_SECONDS,
    ratio: reached / accepted,
    recoveredAt,
    // whole seconds after the heal (the last slice may be cut short by the end of the run)
    curve: Array.from({ length: Math.floor((run.slices.length - 2 - healSlice) / perSecond) }, (_, k) =>
      run.slices.slice(healSlice + k * perSecond, healSlice + (k + 1) * perSecond),
    ).map((w) => ({ reached: sum(w, 'reached') })),
    fullOffered: offered,
  };
}

function report(runs, { offered, capacity, pin }) {
  const version = (p) => {
    try {
      return JSON.parse(readFileSync(new URL(`../node_modules/${p}/package.json`, import.meta.url), 'utf8'))
        .version;
    } catch {
      return 'n/a';
    }
  };
  const args = process.argv.slice(2);
  let md = `## Adaptive throttling against an overloaded backend (\`bench/throttle.mjs\`)\n\n`;
  md += `Command: \`node bench/throttle.mjs${args.length ? ` ${args.join(' ')}` : ''}\`. Node ${process.version}, undici ${version('undici')}; ${machineLine()}. **Taken on a busy shared machine**: rates are offered open-loop by a timer and may lag a little; compare the ratios.\n\n`;
  md += `A local \`node:http\` server accepts at most ${capacity} requests per second (a token bucket) and answers 503 to the rest; the client offers ${offered} requests per second, open loop (10 × capacity: the backend refuses 90 % of the offered load), each a fresh \`undici.request\` (keep-alive pool), through the variant named. A 503 is a refusal (the default classifier's \`failure\`), a 200 an accept. The steady state is the last ${STEADY_SECONDS} s of the overload; then the backend heals (accepts everything), and "back to full rate" is the time from the heal until every following 1 s window has ≥ 95 % of the offered calls reaching the backend${pin ? '. Server on CPU 0, client on CPU 1 (`taskset`)' : ''}.\n\n`;
  md += `| variant | offered /s | reaching the backend /s | accepted /s | reaching ÷ accepted | back to full rate after heal |\n|---|---:|---:|---:|---:|---:|\n`;
  const analysed = {};
  for (const [name, run] of Object.entries(runs)) {
    const a = (analysed[name] = analyse(run, offered));
    md += `| ${name} | ${fmt(a.offeredPerSecond)} | ${fmt(a.reachedPerSecond)} | ${fmt(a.acceptedPerSecond)} | ${fmt(a.ratio, 2)} | ${run.variant === 'raw' ? '— (never throttled)' : a.recoveredAt === undefined ? '**not within the run**' : `${fmt(a.recoveredAt, 2)} s`} |\n`;
  }
  const main = Object.keys(runs).find((n) => n.includes('defaults'));
  const a = analysed[main];
  md += `\n| target | measured | bar | met |\n|---|---:|---:|:-:|\n`;
  md += `| reaching ÷ accepted in the overload (${main}) | ${fmt(a.ratio, 2)} | about k = 2 (1.7 – 2.3) | ${a.ratio >= 1.7 && a.ratio <= 2.3 ? 'yes' : '**no**'} |\n`;
  md += `| seconds until full rate after the heal (${main}) | ${a.recoveredAt === undefined ? 'not within the run' : fmt(a.recoveredAt, 2)} | (reported) | |\n`;
  for (const [name, an] of Object.entries(analysed)) {
    if (runs[name].variant === 'raw') continue;
    md += `\nAfter the heal, ${name}: calls reaching the backend in each second: ${an.curve.map((s) => fmt(s.reached)).join(', ')}.\n`;
  }
  md += `\nReading it: without the throttle every offered call reaches the overloaded backend (10 × what it accepts), each costing it a refusal. With it, the client rejects locally until about k = 2 requests reach the backend per accepted one, and recovers on its own once the backend accepts again: the old refusals leave the window, and every accept counts k times. The window sets the recovery time (about one window here): a shorter window recovers faster and reacts to noise faster too; the SRE book's two minutes would take about two.\n`;
  return md;
}
