/**
 * Setting the kit's fixed response headers in one step. The kit adds ~15 headers to every response (the
 * request id, the security headers, the rate-limit headers); Fastify's `reply.header()` lower-cases the
 * name and checks for `set-cookie` on each call. The names here are lower-case already,
 * so the kit writes them straight into the header object Fastify keeps for the reply (and later hands to
 * `writeHead`): one `Object.assign` of a prepared object per response, plus one property per variable
 * value. (Replacing Fastify's object with a copy instead is slower: it changes the type of a field of
 * every reply and V8 deoptimises Fastify's code that reads it.)
 *
 * That object sits behind Fastify's `fastify.reply.headers` symbol (unchanged since Fastify 3), found
 * on the first reply that has it; where it is missing (another Fastify, or a reply that is not
 * Fastify's), the call falls back to `reply.header()` with the same result. A test checks that the
 * fast path is in use with the Fastify the kit is built on.
 */
import type { FastifyReply } from 'fastify';

const SYMBOL_DESCRIPTION = 'fastify.reply.headers';

type HeaderValue = string | number;
type Headers = Record<string, HeaderValue | HeaderValue[]>;

/** The symbol, once a reply had it (looked for again on each reply until then). */
let replyHeadersKey: symbol | undefined;

function headersOf(reply: FastifyReply): Headers | undefined {
  const key = (replyHeadersKey ??= Object.getOwnPropertySymbols(reply).find(
    (s) => s.description === SYMBOL_DESCRIPTION,
  ));
  if (key === undefined) return undefined;
  const headers = (reply as unknown as Record<symbol, unknown>)[key];
  return typeof headers === 'object' && headers !== null ? (headers as Headers) : undefined;
}

/** Whether the kit writes headers directly (false: it uses `reply.header()`); for tests. */
export function directHeadersInUse(reply: FastifyReply): boolean {
  return headersOf(reply) !== undefined;
}

/**
 * A set of fixed headers (lower-case names, valid values) plus one variable header set first (the
 * request id), applied to a reply at once: the same result as `reply.header()` for each, in order.
 */
export class FixedHeaders {
  readonly #pairs: ReadonlyArray<readonly [string, string]>;
  readonly #variableName: string;
  /** A fixed header of the same name replaces the variable one (it is set after it). */
  readonly #variableReplaced: boolean;
  /** `set-cookie` values accumulate, so a set holding one always goes through `reply.header()`. */
  readonly #direct: boolean;
  /** Assigned per response: the variable header first (empty), then the fixed ones, in order. */
  readonly #template: Record<string, string>;

  constructor(variableName: string, pairs: ReadonlyArray<readonly [string, string]>) {
    this.#variableName = variableName.toLowerCase();
    this.#pairs = pairs;
    this.#variableReplaced = pairs.some(([name]) => name === this.#variableName);
    this.#direct = !pairs.some(([name]) => name === 'set-cookie');
    const template: Record<string, string> = {};
    template[this.#variableName] = '';
    for (const [name, value] of pairs) template[name] = value;
    this.#template = template;
  }

  /** The variable header's name (lower case). */
  get variableName(): string {
    return this.#variableName;
  }

  /**
   * The headers as a flat `[name, value, …]` list in the order `apply` sets them, the variable header
   * first with an empty value (left out when a fixed header replaces it): for `res.writeHead` outside
   * Fastify (the kit's refusals before routing).
   */
  flat(): string[] {
    const flat: string[] = this.#variableReplaced ? [] : [this.#variableName, ''];
    for (const [name, value] of this.#pairs) {
      if (this.#variableReplaced && name === this.#variableName) {
        // `apply` keeps the header where the variable one was first set, with the fixed value
        flat.unshift(name, value);
        continue;
      }
      flat.push(name, value);
    }
    return flat;
  }

  /** Sets the variable header to `value`, then every fixed header (each replacing an earlier value). */
  apply(reply: FastifyReply, value: string): void {
    const headers = this.#direct ? headersOf(reply) : undefined;
    if (headers !== undefined) {
      Object.assign(headers, this.#template);
      if (!this.#variableReplaced) headers[this.#variableName] = value;
      return;
    }
    reply.header(this.#variableName, value);
    for (const [name, v] of this.#pairs) reply.header(name, v);
  }
}

/** One header with a lower-case name (not `set-cookie`), set as `reply.header(name, value)` would. */
export function setHeader(reply: FastifyReply, name: string, value: HeaderValue): void {
  const headers = headersOf(reply);
  if (headers !== undefined) headers[name] = value;
  else reply.header(name, value);
}
