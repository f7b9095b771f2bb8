import { closedLoop, startServer, MAIN, pinSelf, fibonacciPair } from './gcd-bench-lib.mjs';
pinSelf();
const s = await startServer(MAIN, { LOG_LEVEL: 'warn', RATE_LIMIT_PER_SECOND: '1000000', RATE_LIMIT_BURST: '1000000' });
const [a, b] = fibonacciPair(1000);
for (const path of ['/livez', '/api/gcd?n=12&m=18', `/api/gcd?n=${a}x&m=${b}`]) {
  const r = await closedLoop(s, path, { connections: 50, durationS: 4, warmupS: 1 });
  console.log(path.slice(0, 30), Math.round(r.rps), 'req/s', r.serverUs.toFixed(1), 'µs/req server CPU', r['2xx'], r.non2xx);
}
await s.stop();
