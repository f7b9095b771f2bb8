/**
 * The failure classifier, one for retry and circuit breaker: what an outcome says about the dependency.
 *
 * A classifier maps an {@link Outcome} (a value or an error) to a {@link Verdict}:
 *
 * | verdict | meaning | circuitBreaker | retry |
 * |---|---|---|---|
 * | `failure` | the dependency failed | counts a failure | tries again |
 * | `success` | the dependency answered (a value, or an error that is its answer, e.g. a 404) | counts a success | returns it / throws it |
 * | `rejected` | a local policy turned the call away before it reached the dependency (full bulkhead, rate limit) | ignores it | tries again (after its `retryAfterMs`) |
 * | `ignore` | not the dependency's doing and not worth another attempt (an open breaker, an invalid option) | ignores it | throws it |
 *
 * The default, {@link classify}, is the table's examples: every error is a `failure`, except an open
 * breaker (`ignore`: failing fast is its point, so retry does not wait for it), a full bulkhead, a rate
 * limit or a local throttle (`rejected`), an {@link InvalidOptionError}, a caller's deadline and a lost
 * hedge (`ignore`), and an error carrying `retryable: false`
 * (`success`: @bulwark/http's errors say so for a 404); every value is a `success`. The caller's own
 * abort is never a verdict: both policies see it on the context and stand aside.
 *
 * Build on the default with rules, first match wins, the default last (cockatiel's `handleType` /
 * `handleWhen` / `handleResultType`, Polly v8's `PredicateBuilder`, with a verdict instead of a boolean):
 *
 * ```ts
 * const verdicts = classify
 *   .error(HttpStatusError, 'success', (e) => e.status === 404)
 *   .result((response: Response) => response.status === 503, 'failure'); // retry on a result
 * retry({ classify: verdicts }); circuitBreaker({ classify: verdicts });
 * ```
 *
 * Any function `(outcome, ctx) => Verdict` is a classifier too (it is then asked about values as well).
 */
import type { CallContext } from './context.js';
import {
  BulkheadRejectedError,
  CircuitOpenError,
  DeadlineExceededError,
  HedgeCancelledError,
  InvalidOptionError,
  isBranded,
  RateLimitedError,
  ThrottledError,
} from './errors.js';
import type { Outcome } from './policy.js';

/** What an outcome says about the dependency (see the module doc for what each policy does with it). */
export type Verdict = 'failure' | 'success' | 'rejected' | 'ignore';

/** Any function from an outcome (and the call's context) to a verdict. */
export type ClassifyFn = (outcome: Outcome, ctx: CallContext) => Verdict;

/** A class of errors to match (`instanceof`, which Bulwark's errors make work across copies). */
export type ErrorType<E> = abstract new (...args: never[]) => E;

/** A classifier built from rules; each method returns a new one (classifiers are immutable). */
export interface Classifier extends ClassifyFn {
  /** Errors of class `type` (and, with `when`, only those it accepts) get `verdict`. */
  error<E>(type: ErrorType<E>, verdict: Verdict, when?: (error: E) => boolean): Classifier;
  /** Errors `predicate` accepts get `verdict`. */
  errorWhen(predicate: (error: unknown) => boolean, verdict: Verdict): Classifier;
  /** Values `predicate` accepts get `verdict` (`'failure'`: retry on this result, count it as a failure). */
  result<T>(predicate: (value: T) => boolean, verdict: Verdict): Classifier;
}

const VERDICTS: readonly Verdict[] = ['failure', 'success', 'rejected', 'ignore'];

/** Marks a built classifier that has no result rule: every value is a `success`, so values need no call. */
const VALUES_SUCCEED = Symbol('bulwark.valuesSucceed');

/** The default verdict for an error (see the module doc). */
function errorVerdict(error: unknown): Verdict {
  if (typeof error !== 'object' || error === null) return 'failure';
  // Bulwark's own errors (of any copy of the package) carry the brand and a literal code: one switch
  // instead of an `instanceof` per class, so a foreign error costs one property read before `retryable`.
  if (isBranded(error)) {
    switch ((error as { code?: unknown }).code) {
      case CircuitOpenError.code:
      case InvalidOptionError.code:
      case DeadlineExceededError.code:
      case HedgeCancelledError.code:
        return 'ignore';
      case BulkheadRejectedError.code:
      case RateLimitedError.code:
      case ThrottledError.code:
        return 'rejected';
    }
  }
  return (error as { retryable?: unknown }).retryable === false ? 'success' : 'failure';
}

interface Rule {
  readonly errors: boolean;
  readonly test: (subject: unknown) => boolean;
  readonly verdict: Verdict;
}

const VERDICT_WORDS = `one of ${VERDICTS.map((v) => `'${v}'`).join(', ')}`;

function checkVerdict(verdict: unknown, method: string): Verdict {
  if (!VERDICTS.includes(verdict as Verdict)) {
    throw new InvalidOptionError(`classify.${method}.verdict`, verdict, VERDICT_WORDS);
  }
  return verdict as Verdict;
}

function checkFunction(value: unknown, method: string, what: string): void {
  if (typeof value !== 'function')
    throw new InvalidOptionError(`classify.${method}.${what}`, value, 'a function');
}

/** A verdict a policy got from a classifier, checked: anything else is a bug to surface. */
export function verdict(value: unknown): Verdict {
  if (VERDICTS.includes(value as Verdict)) return value as Verdict;
  throw new TypeError(`A classifier returned ${String(value)}; expected ${VERDICT_WORDS}`);
}

function build(rules: readonly Rule[]): Classifier {
  const valuesSucceed = !rules.some((r) => !r.errors);
  const classifier = ((outcome: Outcome): Verdict => {
    const errors = !outcome.ok;
    const subject = outcome.ok ? outcome.value : outcome.error;
    for (const rule of rules) if (rule.errors === errors && rule.test(subject)) return rule.verdict;
    return errors ? errorVerdict(subject) : 'success';
  }) as unknown as Classifier & { [VALUES_SUCCEED]?: true };
  if (valuesSucceed) classifier[VALUES_SUCCEED] = true;
  const add = (rule: Rule): Classifier => build([...rules, rule]);
  classifier.error = <E>(type: ErrorType<E>, verdict: Verdict, when?: (error: E) => boolean) => {
    checkFunction(type, 'error', 'type');
    checkVerdict(verdict, 'error');
    if (when !== undefined) checkFunction(when, 'error', 'when');
    const test =
      when === undefined
        ? (e: unknown) => e instanceof type
        : (e: unknown) => e instanceof type && when(e as E);
    return add({ errors: true, test, verdict });
  };
  classifier.errorWhen = (predicate, verdict) => {
    checkFunction(predicate, 'errorWhen', 'predicate');
    return add({ errors: true, test: predicate, verdict: checkVerdict(verdict, 'errorWhen') });
  };
  classifier.result = <T>(predicate: (value: T) => boolean, verdict: Verdict) => {
    checkFunction(predicate, 'result', 'predicate');
    return add({
      errors: false,
      test: predicate as (v: unknown) => boolean,
      verdict: checkVerdict(verdict, 'result'),
    });
  };
  return Object.freeze(classifier);
}

/**
 * The default classifier, and the start of every built one: `classify.error(…)`, `classify.result(…)`.
 * Used by `retry` and `circuitBreaker` when no `classify` option is given.
 */
export const classify: Classifier = build([]);

/** Whether policies must ask `fn` about values (a plain function or a classifier with a result rule). */
export function judgesValues(fn: ClassifyFn): boolean {
  return (fn as { [VALUES_SUCCEED]?: true })[VALUES_SUCCEED] !== true;
}

/**
 * The verdict on an error without building an Outcome when `fn` is the default (the hot paths of retry
 * and the breaker call this on every failure).
 */
export function errorVerdictOf(fn: ClassifyFn, error: unknown, ctx: CallContext): Verdict {
  return fn === classify ? errorVerdict(error) : verdict(fn({ ok: false, error }, ctx));
}

/** The verdict on a value (call only when {@link judgesValues}). */
export function valueVerdictOf(fn: ClassifyFn, value: unknown, ctx: CallContext): Verdict {
  return verdict(fn({ ok: true, value }, ctx));
}
