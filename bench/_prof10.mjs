import { spawn } from 'node:child_process';
import { openLoop, summarize, fibonacciPair, freePort, pinSelf, processCpuSeconds } from '/work/wt/service/bench/gcd-bench-lib.mjs';
import { request } from './gcd-bench-lib.mjs';
pinSelf();
const port = await freePort();
const child = spawn('taskset', ['-c', '1', process.execPath, ...(process.env.PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] : []), '/work/wt/service/apps/gcd-service/dist/src/main.js'], { env: { ...(process.env.XENV ? JSON.parse(process.env.XENV) : {}), PATH: process.env.PATH, PORT: String(port), LOG_LEVEL: 'warn', RATE_LIMIT_PER_SECOND: '1000000', RATE_LIMIT_BURST: '1000000' }, stdio: 'inherit' });
const origin = `http://127.0.0.1:${port}`;
for (;;) { try { const r = await request(origin + '/livez'); await r.body.dump(); break; } catch { await new Promise(r => setTimeout(r, 100)); } }
const [a, b] = fibonacciPair(1000);
const rate = Number(process.argv[2] ?? 6000);
const cpu0 = processCpuSeconds(child.pid); const t0 = performance.now(); const gen0 = process.cpuUsage();
const recs = await openLoop(origin, `/api/gcd?n=${a}&m=${b}`, { rate, seconds: 6, connections: 256 });
const s = summarize(recs, 5);
console.log('server CPU share of a core', ((processCpuSeconds(child.pid) - cpu0) / ((performance.now() - t0) / 1000)).toFixed(2), 'generator CPU share', ((process.cpuUsage(gen0).user + process.cpuUsage(gen0).system) / 1e3 / (performance.now() - t0)).toFixed(2));
console.log(JSON.stringify(s));
const m = await (await request(origin + '/metrics')).body.text();
console.log(m.split('\n').filter(l => /^(bulwark_shed_total|gcd_computations_total|bulwark_concurrency_limit|bulwark_shed_ratio|bulwark_event_loop_delay|http_server_request_duration_seconds_count\{method="GET",route="\/api\/gcd")/.test(l)).join('\n'));
child.kill('SIGTERM'); await new Promise(r => child.on('exit', r));
