/**
 * A TCP fault proxy (a small toxiproxy): listens on 127.0.0.1 (port 0), forwards every connection to a
 * real upstream, and injects latency, black hole, reset, bandwidth limits, a data limit or "down" — on
 * connections already open as well as new ones. Use it to make Redis or an HTTP dependency go away
 * mid-test.
 */
import { connect, createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { TimerSet, seededRandom } from './timers.js';

/** Which direction a fault slows: `downstream` = upstream → client (responses). */
export type ProxyStream = 'downstream' | 'upstream' | 'both';

export type ProxyFault =
  /** Forward everything untouched. */
  | { readonly type: 'none' }
  /** Delay every chunk by `ms` ± `jitterMs` (order kept). @default stream 'downstream' */
  | {
      readonly type: 'latency';
      readonly ms: number;
      readonly jitterMs?: number;
      readonly stream?: ProxyStream;
    }
  /** Drop all data in both directions and hold the connections open (toxiproxy `timeout 0`). */
  | { readonly type: 'blackhole' }
  /** TCP RST every open connection, and every new one on accept, after `delayMs` (default 0). */
  | { readonly type: 'reset'; readonly delayMs?: number }
  /** Pace data to `bytesPerSecond`. @default stream 'downstream' */
  | { readonly type: 'bandwidth'; readonly bytesPerSecond: number; readonly stream?: ProxyStream }
  /** Close a connection (FIN) after `bytes` bytes went downstream in it. */
  | { readonly type: 'limitData'; readonly bytes: number }
  /** Stop listening (new connections get ECONNREFUSED) and close open connections. */
  | { readonly type: 'down' };

/** Where to forward: `{ host, port }`, `'host:port'` or a URL such as `redis://127.0.0.1:6379`. */
export type ProxyTarget = { readonly host?: string; readonly port: number } | string;

export interface FaultProxyOptions {
  readonly target: ProxyTarget;
  /** Initial fault. @default none */
  readonly fault?: ProxyFault;
  /** Seed for latency jitter. @default 1 */
  readonly seed?: number;
}

export interface FaultProxy {
  readonly host: string;
  readonly port: number;
  /** `127.0.0.1:<port>` */
  readonly address: string;
  /** `http://127.0.0.1:<port>/`, for an HTTP upstream. */
  readonly url: string;
  /** The fault now in force. */
  readonly fault: ProxyFault;
  /** Applies `fault` to open and new connections (`undefined` = none); resolves once in force. */
  setFault(fault: ProxyFault | undefined): Promise<void>;
  /** Fault none (listening again if down) and counters zeroed. */
  reset(): Promise<void>;
  readonly currentConnections: number;
  readonly totalConnections: number;
  /** Bytes delivered to the upstream / to clients since start or `reset()`. */
  readonly bytesUpstream: number;
  readonly bytesDownstream: number;
  /** Clears every timer, destroys every socket, stops listening. Idempotent. */
  close(): Promise<void>;
}

interface Item {
  chunk: Buffer;
  readonly due: number;
}

const HIGH_WATER = 1024 * 1024;

function parseTarget(target: ProxyTarget): { host: string; port: number } {
  if (typeof target !== 'string') return { host: target.host ?? '127.0.0.1', port: target.port };
  if (target.includes('://')) {
    const u = new URL(target);
    return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) };
  }
  const i = target.lastIndexOf(':');
  return { host: target.slice(0, i) || '127.0.0.1', port: Number(target.slice(i + 1)) };
}

function applies(fault: ProxyFault, dir: 'upstream' | 'downstream'): boolean {
  if (fault.type !== 'latency' && fault.type !== 'bandwidth') return true;
  const stream = fault.stream ?? 'downstream';
  return stream === 'both' || stream === dir;
}

/** Starts a fault proxy on 127.0.0.1 with an ephemeral port, forwarding to `options.target`. */
export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = parseTarget(options.target);
  if (!Number.isInteger(target.port) || target.port <= 0) throw new RangeError('target: a port is required');
  const timers = new TimerSet();
  const random = seededRandom(options.seed ?? 1);
  const connections = new Set<Connection>();
  let fault: ProxyFault = options.fault ?? { type: 'none' };
  let totalConnections = 0;
  let bytesUp = 0;
  let bytesDown = 0;
  let closed = false;
  let listening = false;
  let port = 0;

  class Pump {
    readonly #queue: Item[] = [];
    #queued = 0;
    #lastDue = 0;
    #wake: (() => void) | undefined;
    #ended = false;
    #tokens = 0;
    #tokensAt = performance.now();
    sent = 0;

    constructor(
      readonly src: Socket,
      readonly dst: Socket,
      readonly dir: 'upstream' | 'downstream',
      readonly conn: Connection,
    ) {
      src.on('data', (chunk: Buffer) => this.push(chunk));
      src.on('end', () => {
        this.#ended = true;
        this.flush();
      });
    }

    push(chunk: Buffer): void {
      if (fault.type === 'blackhole') return;
      const now = performance.now();
      let due = now;
      if (fault.type === 'latency' && applies(fault, this.dir)) {
        const jitter = fault.jitterMs ? (random() * 2 - 1) * fault.jitterMs : 0;
        due = Math.max(now + Math.max(0, fault.ms + jitter), this.#lastDue);
      }
      this.#lastDue = due;
      this.#queue.push({ chunk, due });
      this.#queued += chunk.length;
      if (this.#queued > HIGH_WATER) this.src.pause();
      this.flush();
    }

    /** Drops queued data (black hole switched on). */
    drop(): void {
      this.#queue.length = 0;
      this.#queued = 0;
      this.src.resume();
    }

    flush(): void {
      this.#wake?.();
      this.#wake = undefined;
      while (this.#queue.length > 0) {
        if (this.dst.destroyed) return;
        if (fault.type === 'blackhole') return this.drop();
        const item = this.#queue[0]!;
        const now = performance.now();
        if (item.due > now) return this.#sleep(item.due - now);
        let chunk = item.chunk;
        if (fault.type === 'bandwidth' && applies(fault, this.dir)) {
          const rate = fault.bytesPerSecond;
          this.#tokens = Math.min(rate / 10, this.#tokens + ((now - this.#tokensAt) * rate) / 1000);
          this.#tokensAt = now;
          if (this.#tokens < 1)
            return this.#sleep(Math.max(5, Math.ceil(((1 - this.#tokens) * 1000) / rate)));
          chunk = chunk.subarray(0, Math.floor(this.#tokens));
          this.#tokens -= chunk.length;
        } else {
          this.#tokens = 0;
          this.#tokensAt = now;
        }
        if (fault.type === 'limitData' && this.dir === 'downstream') {
          const room = Math.max(0, fault.bytes - this.sent);
          if (chunk.length >= room) {
            this.#write(chunk.subarray(0, room));
            this.conn.end();
            return;
          }
        }
        this.#write(chunk);
        if (chunk.length === item.chunk.length) this.#queue.shift();
        else item.chunk = item.chunk.subarray(chunk.length);
        this.#queued -= chunk.length;
      }
      if (this.#queued <= HIGH_WATER) this.src.resume();
      if (this.#ended && !this.dst.destroyed) this.dst.end();
    }

    #write(chunk: Buffer): void {
      if (chunk.length === 0) return;
      this.sent += chunk.length;
      if (this.dir === 'upstream') bytesUp += chunk.length;
      else bytesDown += chunk.length;
      this.dst.write(chunk);
    }

    #sleep(ms: number): void {
      this.#wake = timers.after(ms, () => {
        this.#wake = undefined;
        this.flush();
      });
    }

    stop(): void {
      this.#wake?.();
      this.#wake = undefined;
    }
  }

  class Connection {
    readonly upstream: Socket;
    readonly pumps: Pump[];
    #done = false;

    constructor(readonly client: Socket) {
      this.upstream = connect({ host: target.host, port: target.port });
      this.pumps = [
        new Pump(client, this.upstream, 'upstream', this),
        new Pump(this.upstream, client, 'downstream', this),
      ];
      // An error on one side resets the other (what a real middlebox would show); a clean close half-closes.
      client.on('error', () => this.reset());
      this.upstream.on('error', () => this.reset());
      client.on('close', () => this.destroy());
      this.upstream.on('close', () => {
        // the downstream pump ends the client after flushing; make sure nothing lingers after that
        if (!client.destroyed && client.writableEnded) client.destroySoon();
      });
    }

    reset(): void {
      if (this.#done) return;
      this.#stop();
      if (!this.client.destroyed) this.client.resetAndDestroy();
      if (!this.upstream.destroyed) this.upstream.resetAndDestroy();
    }

    end(): void {
      if (this.#done) return;
      this.#stop();
      this.upstream.destroy();
      this.client.end();
      this.client.destroySoon();
    }

    destroy(): void {
      this.#stop();
      this.client.destroy();
      this.upstream.destroy();
    }

    #stop(): void {
      if (this.#done) return;
      this.#done = true;
      for (const p of this.pumps) p.stop();
      connections.delete(this);
    }
  }

  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    if (closed) {
      client.destroy();
      return;
    }
    totalConnections++;
    client.on('error', () => {});
    if (fault.type === 'reset') {
      const delay = fault.delayMs ?? 0;
      if (delay === 0) client.resetAndDestroy();
      else timers.after(delay, () => client.resetAndDestroy());
      return;
    }
    const conn = new Connection(client);
    conn.upstream.on('error', () => {});
    connections.add(conn);
  });

  async function listen(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(port, '127.0.0.1', () => {
            server.off('error', reject);
            resolve();
          });
        });
        listening = true;
        port = (server.address() as AddressInfo).port;
        return;
      } catch (error) {
        if (attempt >= 20 || (error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
        await new Promise((r) => setTimeout(r, 25));
      }
    }
  }

  function unlisten(): Promise<void> {
    if (!listening) return Promise.resolve();
    listening = false;
    return new Promise((resolve) => server.close(() => resolve()));
  }

  await listen();
  let closing: Promise<void> | undefined;

  const proxy: FaultProxy = {
    host: '127.0.0.1',
    get port() {
      return port;
    },
    get address() {
      return `127.0.0.1:${port}`;
    },
    get url() {
      return `http://127.0.0.1:${port}/`;
    },
    get fault() {
      return fault;
    },
    async setFault(next) {
      if (closed) throw new Error('fault proxy closed');
      const previous = fault;
      fault = next ?? { type: 'none' };
      switch (fault.type) {
        case 'down': {
          const stopped = unlisten();
          for (const c of [...connections]) c.destroy();
          await stopped;
          return;
        }
        case 'reset': {
          const delay = fault.delayMs ?? 0;
          for (const c of [...connections]) {
            if (delay === 0) c.reset();
            else timers.after(delay, () => c.reset());
          }
          break;
        }
        case 'blackhole':
          for (const c of connections) for (const p of c.pumps) p.drop();
          break;
        default:
          for (const c of connections) for (const p of c.pumps) p.flush();
      }
      if (previous.type === 'down' && !listening) await listen();
    },
    async reset() {
      await proxy.setFault(undefined);
      totalConnections = connections.size;
      bytesUp = 0;
      bytesDown = 0;
    },
    get currentConnections() {
      return connections.size;
    },
    get totalConnections() {
      return totalConnections;
    },
    get bytesUpstream() {
      return bytesUp;
    },
    get bytesDownstream() {
      return bytesDown;
    },
    close() {
      closing ??= (async () => {
        closed = true;
        timers.close();
        for (const c of [...connections]) c.destroy();
        await unlisten();
      })();
      return closing;
    },
  };
  return proxy;
}
