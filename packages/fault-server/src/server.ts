/**
 * A hostile origin for tests: an HTTP/1.1 server on 127.0.0.1 (port 0) that answers normally or with a
 * fault chosen per server, per path (`setFault`) or per URL (`/status/503?retryAfter=2`). It counts
 * connections and concurrent requests and logs every request with timestamps for assertions.
 */
import { STATUS_CODES, createServer } from 'node:http';
import { gzipSync } from 'node:zlib';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import {
  faultFromUrl,
  patternBody,
  specFromUrl,
  type Fault,
  type FaultScope,
  type FaultType,
  type MalformedKind,
  type ResponseSpec,
} from './faults.js';
import { TimerSet, seededRandom } from './timers.js';

export interface FaultServerOptions {
  /** A fault for every request (as `setFault(fault)`). @default none */
  readonly fault?: Fault;
  /** The normal response. @default `200 text/plain "ok"` */
  readonly response?: ResponseSpec;
  /** Seed of the PRNG behind `FaultScope.probability`. @default 1 */
  readonly seed?: number;
  /** How many request records `requests` keeps (oldest dropped first). @default 10000 */
  readonly maxLoggedRequests?: number;
}

/** One request the server saw. Times are `performance.now()` milliseconds. */
export interface RequestRecord {
  /** 1, 2, 3, … in arrival order. */
  readonly id: number;
  readonly method: string;
  /** Path and query, as sent. */
  readonly url: string;
  /** Pathname only. */
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** Which connection carried it (1, 2, … in accept order). */
  readonly connectionId: number;
  /** The fault applied (`'none'` for a normal response). */
  readonly fault: FaultType;
  /** When its headers arrived. */
  readonly startedAt: number;
  /** When the response finished or its connection closed; `undefined` while in flight. */
  readonly endedAt: number | undefined;
  /** Requests in flight at the server when this one arrived, itself included. */
  readonly concurrency: number;
}

export interface FaultServer {
  /** `http://127.0.0.1:<port>/` */
  readonly url: string;
  /** `http://127.0.0.1:<port>` */
  readonly origin: string;
  readonly port: number;
  /**
   * Installs `fault` for every request, or for `scope.path` only, optionally for the next `scope.times`
   * requests or with a probability. Replaces the fault of the same path. `undefined` removes it.
   */
  setFault(fault: Fault | undefined, scope?: FaultScope): void;
  /** Sets the normal response for every path, or for `path` only. */
  setResponse(spec: ResponseSpec, path?: string): void;
  /**
   * Back to the configuration `startFaultServer` was given (`options.fault`, `options.response`; every
   * `setFault` / `setResponse` removed), with the request log and counters cleared.
   */
  reset(): void;
  /** The request log (newest last, at most `maxLoggedRequests`). */
  readonly requests: readonly RequestRecord[];
  /** Requests seen since start or the last `reset()`. */
  readonly requestCount: number;
  /** Open TCP connections now. */
  readonly currentConnections: number;
  /** Connections accepted since start or the last `reset()`. */
  readonly totalConnections: number;
  /** Requests in flight now. */
  readonly currentRequests: number;
  /** The most requests ever in flight at once since start or the last `reset()`. */
  readonly maxConcurrentRequests: number;
  /** Resolves once `requestCount ≥ count`; rejects after `timeoutMs` (default 5000) or on `close()`. */
  waitForRequests(count: number, timeoutMs?: number): Promise<void>;
  /**
   * Resolves once no request is in flight (each one answered, or its connection closed: the client gave
   * up); rejects after `timeoutMs` (default 5000) or on `close()`.
   */
  waitForIdle(timeoutMs?: number): Promise<void>;
  /** Clears every timer, destroys every socket, stops listening. Idempotent. */
  close(): Promise<void>;
}

interface Rule {
  readonly fault: Fault;
  remaining: number;
  readonly probability: number;
}

interface Waiter {
  /** Resolve once this many requests were seen; `-1`: once none is in flight. */
  readonly count: number;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
  readonly cancel: () => void;
}

interface MutableRecord extends Omit<RequestRecord, 'endedAt'> {
  endedAt: number | undefined;
}

const DEFAULT_RESPONSE: ResponseSpec = Object.freeze({ status: 200, body: 'ok' });

/** Starts a fault server on 127.0.0.1 with an ephemeral port. */
export async function startFaultServer(options: FaultServerOptions = {}): Promise<FaultServer> {
  const timers = new TimerSet();
  const random = seededRandom(options.seed ?? 1);
  const maxLogged = options.maxLoggedRequests ?? 10_000;
  const sockets = new Map<Socket, number>();
  const rules = new Map<string | undefined, Rule>();
  const responses = new Map<string | undefined, ResponseSpec>();
  const log: MutableRecord[] = [];
  let waiters: Waiter[] = [];
  let nextConnection = 1;
  let nextRequest = 1;
  let requestCount = 0;
  let totalConnections = 0;
  let currentRequests = 0;
  let maxConcurrent = 0;
  let closed = false;

  function initial(): void {
    rules.clear();
    responses.clear();
    if (options.fault) rules.set(undefined, { fault: options.fault, remaining: Infinity, probability: 1 });
    if (options.response) responses.set(undefined, options.response);
  }
  initial();

  function pickFault(url: URL): Fault {
    for (const key of [url.pathname, undefined]) {
      const rule = rules.get(key);
      if (!rule) continue;
      if (rule.probability < 1 && random() >= rule.probability) continue;
      if (--rule.remaining <= 0) rules.delete(key);
      return rule.fault;
    }
    return faultFromUrl(url) ?? { type: 'none' };
  }

  const due = (w: Waiter): boolean => (w.count < 0 ? currentRequests === 0 : requestCount >= w.count);
  function settleWaiters(): void {
    for (const w of waiters.filter(due)) {
      w.cancel();
      w.resolve();
    }
    waiters = waiters.filter((w) => !due(w));
  }

  function wait(count: number, timeoutMs: number, what: () => string): Promise<void> {
    if (closed) return Promise.reject(new Error('fault server closed'));
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        count,
        resolve,
        reject,
        cancel: timers.after(timeoutMs, () => {
          waiters = waiters.filter((w) => w !== waiter);
          reject(new Error(what()));
        }),
      };
      waiters.push(waiter);
    });
  }

  const server = createServer((req, res) => {
    const socket = req.socket;
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    let fault: Fault;
    let spec: ResponseSpec;
    try {
      fault = pickFault(url);
      spec = specFromUrl(url, responses.get(url.pathname) ?? responses.get(undefined) ?? DEFAULT_RESPONSE);
    } catch (error) {
      fault = { type: 'status', status: 400, body: `${(error as Error).message}\n` };
      spec = DEFAULT_RESPONSE;
    }
    currentRequests++;
    maxConcurrent = Math.max(maxConcurrent, currentRequests);
    requestCount++;
    const record: MutableRecord = {
      id: nextRequest++,
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      path: url.pathname,
      headers: req.headers,
      connectionId: sockets.get(socket) ?? 0,
      fault: fault.type,
      startedAt: performance.now(),
      endedAt: undefined,
      concurrency: currentRequests,
    };
    log.push(record);
    if (log.length > maxLogged) log.splice(0, log.length - maxLogged);
    // Timers of this request die with it (a drip must not write into a closed socket).
    const cancels = new Set<() => void>();
    const later = (ms: number, fn: () => void): void => {
      const cancel = timers.after(ms, () => {
        cancels.delete(cancel);
        fn();
      });
      cancels.add(cancel);
    };
    res.once('close', () => {
      for (const cancel of cancels) cancel();
      cancels.clear();
      currentRequests--;
      record.endedAt = performance.now();
      if (currentRequests === 0) settleWaiters();
    });
    req.resume();
    settleWaiters();
    applyFault(fault, spec, req, res, later);
  });
  server.keepAliveTimeout = 5_000;
  server.on('connection', (socket: Socket) => {
    if (closed) {
      socket.destroy();
      return;
    }
    totalConnections++;
    sockets.set(socket, nextConnection++);
    socket.once('close', () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const origin = `http://127.0.0.1:${port}`;
  let closing: Promise<void> | undefined;

  return {
    url: `${origin}/`,
    origin,
    port,
    setFault(fault, scope = {}) {
      if (fault === undefined) {
        rules.delete(scope.path);
        return;
      }
      const probability = scope.probability ?? 1;
      if (!(probability >= 0 && probability <= 1)) throw new RangeError('probability must be within [0, 1]');
      const times = scope.times ?? Infinity;
      if (!(times > 0)) throw new RangeError('times must be > 0');
      rules.set(scope.path, { fault, remaining: times, probability });
    },
    setResponse(spec, path) {
      responses.set(path, spec);
    },
    reset() {
      initial();
      log.length = 0;
      requestCount = 0;
      totalConnections = sockets.size;
      maxConcurrent = currentRequests;
    },
    get requests() {
      return log;
    },
    get requestCount() {
      return requestCount;
    },
    get currentConnections() {
      return sockets.size;
    },
    get totalConnections() {
      return totalConnections;
    },
    get currentRequests() {
      return currentRequests;
    },
    get maxConcurrentRequests() {
      return maxConcurrent;
    },
    waitForRequests(count, timeoutMs = 5_000) {
      if (requestCount >= count) return Promise.resolve();
      return wait(
        count,
        timeoutMs,
        () => `fault server saw ${requestCount} of ${count} requests within ${timeoutMs} ms`,
      );
    },
    waitForIdle(timeoutMs = 5_000) {
      if (currentRequests === 0) return Promise.resolve();
      return wait(
        -1,
        timeoutMs,
        () => `fault server: ${currentRequests} requests still in flight after ${timeoutMs} ms`,
      );
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        closed = true;
        timers.close();
        for (const w of waiters) w.reject(new Error('fault server closed'));
        waiters = [];
        server.close(() => resolve());
        server.closeAllConnections();
        for (const socket of sockets.keys()) socket.destroy();
      });
      return closing;
    },
  };
}

type Later = (ms: number, fn: () => void) => void;

function applyFault(
  fault: Fault,
  spec: ResponseSpec,
  req: IncomingMessage,
  res: ServerResponse,
  later: Later,
): void {
  const socket = req.socket;
  switch (fault.type) {
    case 'none':
      respond(req, res, spec);
      return;
    case 'latency':
      later(fault.ms, () => respond(req, res, spec));
      return;
    case 'blackhole':
      return;
    case 'reset': {
      if (fault.afterBytes === undefined) {
        if (!fault.delayMs) socket.resetAndDestroy();
        else later(fault.delayMs, () => socket.resetAndDestroy());
        return;
      }
      const body = bodyOf(spec);
      const out = startBody(res, spec, body.length);
      const part = body.subarray(0, Math.min(fault.afterBytes, Math.max(0, body.length - 1)));
      out.write(part, () => later(fault.delayMs ?? 50, () => socket.resetAndDestroy()));
      return;
    }
    case 'truncate': {
      const body = bodyOf(spec);
      const part = body.subarray(0, Math.min(fault.bytes, Math.max(0, body.length - 1)));
      if ((spec.framing ?? 'length') === 'chunked') {
        // cut inside a chunk: its size line promises the whole body, only `part` follows
        writeRawHead(socket, spec, { 'transfer-encoding': 'chunked' });
        socket.write(`${body.length.toString(16)}\r\n`);
        socket.write(part, () => socket.destroySoon());
        return;
      }
      const out = startBody(res, spec, body.length);
      out.write(part, () => socket.destroySoon());
      return;
    }
    case 'stall': {
      const body = bodyOf(spec);
      const out = startBody(res, spec, body.length);
      out.write(body.subarray(0, Math.min(fault.afterBytes, Math.max(0, body.length - 1))));
      return;
    }
    case 'drip': {
      const body = bodyOf(spec);
      const out = startBody(res, spec, body.length);
      out.write(Buffer.alloc(0));
      let sent = 0;
      const tick = (): void => {
        const next = Math.min(body.length, sent + fault.bytes);
        out.write(body.subarray(sent, next));
        sent = next;
        if (sent >= body.length) out.end();
        else later(fault.intervalMs, tick);
      };
      if (body.length === 0) out.end();
      else later(fault.intervalMs, tick);
      return;
    }
    case 'bandwidth': {
      const body = bodyOf(spec);
      const out = startBody(res, spec, body.length);
      out.write(Buffer.alloc(0));
      const start = performance.now();
      let sent = 0;
      const tick = (): void => {
        const allowed = Math.min(
          body.length,
          Math.floor((fault.bytesPerSecond * (performance.now() - start)) / 1000),
        );
        if (allowed > sent) {
          out.write(body.subarray(sent, allowed));
          sent = allowed;
        }
        if (sent >= body.length) out.end();
        else later(20, tick);
      };
      if (body.length === 0) out.end();
      else later(20, tick);
      return;
    }
    case 'status': {
      const body = Buffer.from(fault.body ?? `status ${fault.status}\n`);
      const headers: Record<string, string | number> = {
        'content-type': 'text/plain; charset=utf-8',
        'content-length': body.length,
      };
      if (fault.retryAfter !== undefined)
        headers['retry-after'] =
          fault.retryAfter instanceof Date ? fault.retryAfter.toUTCString() : String(fault.retryAfter);
      res.writeHead(fault.status, headers);
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    case 'redirect':
      res.writeHead(fault.status ?? 302, { location: fault.location, 'content-length': 0 });
      res.end();
      return;
    case 'malformed':
      socket.write(malformed(fault.kind));
      socket.destroySoon();
      return;
    case 'close':
      socket.destroySoon();
      return;
  }
}

function bodyOf(spec: ResponseSpec): Buffer {
  const plain =
    spec.body !== undefined
      ? typeof spec.body === 'string'
        ? Buffer.from(spec.body)
        : Buffer.from(spec.body)
      : spec.size === undefined
        ? Buffer.from('ok')
        : patternBody(spec.size);
  return spec.gzip === true ? gzipSync(plain) : plain;
}

function headersOf(spec: ResponseSpec, length: number | undefined): Record<string, string | number> {
  const headers: Record<string, string | number> = {
    'content-type': spec.contentType ?? 'text/plain; charset=utf-8',
  };
  if (length !== undefined) headers['content-length'] = length;
  if (spec.gzip === true) headers['content-encoding'] = 'gzip';
  Object.assign(headers, validators(spec));
  for (const [k, v] of Object.entries(spec.headers ?? {})) headers[k.toLowerCase()] = v;
  return headers;
}

function validators(spec: ResponseSpec): Record<string, string> {
  const headers: Record<string, string> = {};
  if (spec.etag !== undefined) headers['etag'] = spec.etag;
  if (spec.lastModified !== undefined)
    headers['last-modified'] =
      spec.lastModified instanceof Date ? spec.lastModified.toUTCString() : spec.lastModified;
  if (spec.cacheControl !== undefined) headers['cache-control'] = spec.cacheControl;
  return headers;
}

/** RFC 9110 §13.1.2 weak comparison over a list (or `*`). */
function etagMatches(header: string, etag: string): boolean {
  const strip = (t: string): string => t.trim().replace(/^W\//, '');
  if (header.trim() === '*') return true;
  return header.split(',').some((t) => strip(t) === strip(etag));
}

function notModified(req: IncomingMessage, spec: ResponseSpec): boolean {
  const inm = req.headers['if-none-match'];
  if (inm !== undefined) return spec.etag !== undefined && etagMatches(inm, spec.etag);
  const ims = req.headers['if-modified-since'];
  if (ims === undefined || spec.lastModified === undefined) return false;
  const since = Date.parse(ims);
  const modified =
    spec.lastModified instanceof Date ? spec.lastModified.getTime() : Date.parse(spec.lastModified);
  return Number.isFinite(since) && Number.isFinite(modified) && modified <= since;
}

function respond(req: IncomingMessage, res: ServerResponse, spec: ResponseSpec): void {
  if ((req.method === 'GET' || req.method === 'HEAD') && notModified(req, spec)) {
    const headers: Record<string, string> = validators(spec);
    for (const [k, v] of Object.entries(spec.headers ?? {})) headers[k.toLowerCase()] = v;
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const body = bodyOf(spec);
  if (req.method === 'HEAD' || (spec.framing ?? 'length') === 'length') {
    res.writeHead(spec.status ?? 200, headersOf(spec, body.length));
    res.end(req.method === 'HEAD' ? undefined : body);
    return;
  }
  const out = startBody(res, spec, body.length);
  out.write(body);
  out.end();
}

/** Writes the status line and headers straight to the socket (bypassing Node's framing choices). */
function writeRawHead(socket: Socket, spec: ResponseSpec, extra: Record<string, string>): void {
  const status = spec.status ?? 200;
  const head = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}`];
  for (const [k, v] of Object.entries({ ...headersOf(spec, undefined), ...extra })) head.push(`${k}: ${v}`);
  socket.write(`${head.join('\r\n')}\r\n\r\n`);
}

/** Writes a body with the spec's framing: through `res` (length, chunked) or raw on the socket (close). */
interface BodyOut {
  write(chunk: Buffer, then?: () => void): void;
  end(): void;
}

/**
 * Sends the status line and headers with the spec's framing. `length`: `Content-Length: total`;
 * `chunked`: Node's chunked encoding (no length); `close`: neither — the head is written raw on the
 * socket with `Connection: close`, and the body ends when the socket does (Node's `ServerResponse` would
 * always pick one of the other two).
 */
function startBody(res: ServerResponse, spec: ResponseSpec, total: number): BodyOut {
  const status = spec.status ?? 200;
  const framing = spec.framing ?? 'length';
  if (framing === 'close') {
    const socket = res.socket!;
    writeRawHead(socket, spec, { connection: 'close' });
    return {
      write: (chunk, then) => {
        if (chunk.length === 0) {
          then?.();
          return;
        }
        socket.write(chunk, () => then?.());
      },
      end: () => socket.end(),
    };
  }
  res.writeHead(status, headersOf(spec, framing === 'length' ? total : undefined));
  res.flushHeaders();
  return {
    write: (chunk, then) => {
      if (chunk.length === 0) {
        then?.();
        return;
      }
      res.write(chunk, () => then?.());
    },
    end: () => res.end(),
  };
}

function malformed(kind: MalformedKind): Buffer {
  switch (kind) {
    case 'status-line':
      return Buffer.from('HTPT/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok');
    case 'header':
      return Buffer.from('HTTP/1.1 200 OK\r\nBad Header: x\r\nContent-Length: 2\r\n\r\nok');
    case 'garbage':
      return Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 37 + 11) % 256));
    case 'content-length':
      return Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nok');
    case 'chunked':
      return Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n');
    case 'huge-header':
      return Buffer.from(
        `HTTP/1.1 200 OK\r\nX-Huge: ${'a'.repeat(20 * 1024)}\r\nContent-Length: 2\r\n\r\nok`,
      );
  }
}
