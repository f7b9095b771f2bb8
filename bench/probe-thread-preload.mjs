// Bench-only prototype (gcd-livez-probe.mjs, BENCH_PROBE_THREAD=1): loaded into gcd-service with
// `node --import`, it serves /livez from a worker thread on its own port (BENCH_PROBE_PORT) — alive while
// the main event loop has beaten within 5 s (a heartbeat in shared memory every 100 ms) — to see what a
// probe listener off the main event loop would answer under overload. Not part of the service.
import { isMainThread, Worker } from 'node:worker_threads';

if (isMainThread && process.env.BENCH_PROBE_PORT) {
  const beat = new Float64Array(new SharedArrayBuffer(8));
  beat[0] = Date.now();
  setInterval(() => (beat[0] = Date.now()), 100).unref();
  const worker = new Worker(
    `const { workerData } = require('node:worker_threads');
     const beat = new Float64Array(workerData.sab);
     require('node:http').createServer((req, res) => {
       const ok = Date.now() - beat[0] < 5000;
       res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain', 'content-length': 2 });
       res.end(ok ? 'ok' : 'no');
     }).listen(workerData.port, '127.0.0.1');`,
    { eval: true, workerData: { sab: beat.buffer, port: Number(process.env.BENCH_PROBE_PORT) } },
  );
  worker.unref();
}
