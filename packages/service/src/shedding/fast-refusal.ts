/**
 * Refusing before Fastify: under overload most requests are refused, so a refusal must cost next to
 * nothing — through Fastify (routing, the request and reply objects, hooks, serialisation) a 503 cost
 * as much CPU as a trivial answer (docs/benchmarks.md, "What a refusal costs"), and at 10× capacity the refusals starved the admitted
 * requests. The kit's raw server (`createRawServer`) asks {@link FastRefusal.refuse} first, in Node's
 * `request` listener: for a request to a route that sheds, it consults the event-loop gate and (for a
 * request without a body) the concurrency limit, and when either says no it writes the kit's 503 itself
 * — the same status, headers (`x-request-id`, the route's security headers, `Retry-After`) and body
 * (`BULWARK_ERR_OVERLOADED`) as the hook would, counted in `bulwark_shed_total` and the duration
 * histogram — and Fastify never sees the request. No slot is taken for it, so none is to be returned.
 *
 * Everything else goes to Fastify unchanged: a route that does not shed, a path that is not the exact
 * path of a static route (parametric routes, 404s, URL variants the router would normalise), a request
 * with the `bulwark-timeout-ms` header (its 400/504 comes first), and every request while the server
 * shuts down, traces or writes an access log line per request (each of those wants the request in
 * Fastify). A request the gate let through is marked, so the route's onRequest hook does not ask the
 * gate (which sheds a random share) a second time.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Counter } from 'prom-client';
import { DEADLINE_HEADER } from '@bulwark/core';
import type { RouteState, Runtime } from '../hooks.js';
import type { FixedHeaders } from '../reply-headers.js';
import type { Shedder } from './shedder.js';

/** Where the raw server keeps its pre-routing step (set on the server object by `createRawServer`). */
const PRE_ROUTING = Symbol.for('bulwark.preRouting');

/** The step the raw server runs before Fastify's handler: true when it answered the request itself. */
export interface PreRouting {
  refuse: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
}

type Listener = (req: IncomingMessage, res: ServerResponse) => void;

/** Fastify's handler behind an (initially empty) pre-routing step; attach the step to the server. */
export function withPreRouting(handler: Listener): {
  listener: Listener;
  checkContinue: Listener;
  preRouting: PreRouting;
} {
  const preRouting: PreRouting = { refuse: undefined };
  const listener: Listener = (req, res) => {
    const refuse = preRouting.refuse;
    if (refuse === undefined || !refuse(req, res)) handler(req, res);
  };
  // `Expect: 100-continue`: a request that is refused gets its 503 instead of the `100 Continue` that
  // would invite its body (RFC 9110 §10.1.1), and the connection closes (the body is never sent); any
  // other request gets the 100 and goes on as usual (what Node does when nobody listens for this).
  const checkContinue: Listener = (req, res) => {
    const refuse = preRouting.refuse;
    if (refuse !== undefined) {
      const keepAlive = res.shouldKeepAlive;
      res.shouldKeepAlive = false;
      if (refuse(req, res)) return;
      res.shouldKeepAlive = keepAlive;
    }
    res.writeContinue();
    handler(req, res);
  };
  return { listener, checkContinue, preRouting };
}

export function attachPreRouting(server: Server, preRouting: PreRouting): void {
  Object.defineProperty(server, PRE_ROUTING, { value: preRouting });
}

/** The pre-routing step of a server made by the kit's `createRawServer` (undefined for any other). */
export function preRoutingOf(server: unknown): PreRouting | undefined {
  if (typeof server !== 'object' || server === null) return undefined;
  return (server as Record<symbol, PreRouting | undefined>)[PRE_ROUTING];
}

/** Whether a request carries a body still to be read (Fastify parses none for GET and HEAD). */
export function carriesBody(method: string | undefined, headers: IncomingMessage['headers']): boolean {
  if (method === 'GET' || method === 'HEAD') return false;
  if (headers['transfer-encoding'] !== undefined) return true;
  const length = headers['content-length'];
  return length !== undefined && length !== '0';
}

const JSON_TYPE = 'application/json; charset=utf-8';

/** One refusable route: its state (histogram cells) and the 503's header list (the id at `idIndex`). */
interface Entry {
  readonly state: RouteState;
  readonly head: string[];
  readonly idIndex: number;
}

export class FastRefusal {
  /** method → exact path → route; only static routes that shed. */
  readonly #routes = new Map<string, Map<string, Entry>>();
  /** `method path` of static routes registered with constraints (the router may pick another route). */
  readonly #constrained = new Set<string>();
  readonly #rt: Runtime;
  readonly #shedder: Shedder;
  readonly #genReqId: (req: IncomingMessage) => string;
  readonly #body: Buffer;
  readonly #retryAfter: string;
  readonly #heads = new Map<FixedHeaders, { head: string[]; idIndex: number }>();
  readonly #shedConcurrency: ReturnType<Counter<'reason'>['labels']> | undefined;
  readonly #shedEventLoop: ReturnType<Counter<'reason'>['labels']> | undefined;
  /** The last request the gate let through, so its route hook does not ask the gate again. */
  passed: IncomingMessage | null = null;

  constructor(rt: Runtime, shedder: Shedder, genReqId: (req: IncomingMessage) => string, body: string) {
    this.#rt = rt;
    this.#shedder = shedder;
    this.#genReqId = genReqId;
    this.#body = Buffer.from(body);
    this.#retryAfter = String(rt.retryAfterSeconds);
    this.#shedConcurrency = rt.metrics?.shed.labels('concurrency');
    this.#shedEventLoop = rt.metrics?.shed.labels('event_loop');
  }

  /** Whether this kit's configuration lets refusals skip Fastify at all. */
  static usable(rt: Runtime): boolean {
    return !rt.tracing && !rt.accessLog;
  }

  /** Registers a route (as `onRoute` sees it); only static routes that shed are refused here. */
  addRoute(method: string, url: string, constrained: boolean, state: RouteState): void {
    const key = `${method} ${url}`;
    if (constrained) {
      this.#constrained.add(key);
      this.#routes.get(method)?.delete(url);
      return;
    }
    if (!state.shed || this.#constrained.has(key) || url.includes(':') || url.includes('*')) return;
    let byPath = this.#routes.get(method);
    if (byPath === undefined) this.#routes.set(method, (byPath = new Map()));
    byPath.set(url, { state, ...this.#head(state.headers) });
  }

  /** Registers `method` at `url` like the route of `from` at the same url (the HEAD twin of a GET). */
  alias(method: string, from: string, url: string): void {
    if (method === from) return;
    const entry = this.#routes.get(from)?.get(url);
    if (entry === undefined || this.#constrained.has(`${method} ${url}`)) return;
    let byPath = this.#routes.get(method);
    if (byPath === undefined) this.#routes.set(method, (byPath = new Map()));
    byPath.set(url, entry);
  }

  /** The shed response's headers in Fastify's order, one list per security-header set (reused: Node copies it). */
  #head(headers: FixedHeaders): { head: string[]; idIndex: number } {
    let made = this.#heads.get(headers);
    if (made === undefined) {
      const head = headers.flat();
      const idIndex = head[0] === headers.variableName && head[1] === '' ? 1 : -1;
      head.push('retry-after', this.#retryAfter);
      // as the hook's reply.header(): a name the security headers already set keeps its place
      const cacheControl = head.findIndex((name, i) => i % 2 === 0 && name === 'cache-control');
      if (cacheControl === -1) head.push('cache-control', 'no-store');
      else head[cacheControl + 1] = 'no-store';
      head.push('content-type', JSON_TYPE, 'content-length', String(this.#body.length));
      made = { head, idIndex };
      this.#heads.set(headers, made);
    }
    return made;
  }

  /** Answers 503 when the request is to be shed (true), or leaves it to Fastify (false). */
  readonly refuse = (req: IncomingMessage, res: ServerResponse): boolean => {
    const rt = this.#rt;
    if (rt.closing || rt.draining) return false;
    const url = req.url ?? '';
    const byPath = this.#routes.get(req.method ?? '');
    if (byPath === undefined) return false;
    const q = url.indexOf('?');
    const entry = byPath.get(q === -1 ? url : url.slice(0, q));
    if (entry === undefined) return false;
    // The route hook answers a malformed or spent budget (400 / 504) before it sheds.
    if (entry.state.deadline && req.headers[DEADLINE_HEADER] !== undefined) return false;
    const shedder = this.#shedder;
    let counter;
    if (shedder.gate.shouldShed()) counter = this.#shedEventLoop;
    else if (shedder.limiter.inflight >= shedder.limiter.limit && !carriesBody(req.method, req.headers)) {
      counter = this.#shedConcurrency;
    } else {
      this.passed = req;
      return false;
    }
    const started = performance.now();
    const head = entry.head;
    if (entry.idIndex !== -1) head[entry.idIndex] = this.#genReqId(req);
    res.writeHead(503, head);
    res.end(this.#body);
    counter?.inc();
    entry.state.observe(req.method!, 503, (performance.now() - started) / 1000);
    return true;
  };
}

/** Hooks a kit's fast refusal into its server, when the server is the kit's own. */
export function installFastRefusal(server: unknown, refusal: FastRefusal): boolean {
  const preRouting = preRoutingOf(server);
  if (preRouting === undefined) return false;
  preRouting.refuse = refusal.refuse;
  return true;
}

export type { ServerResponse };
