/**
 * The support code the Bulwark CLIs (`@bulwark/http-get`, `@bulwark/many-requests`) share: atomic file
 * replacement with its temp-file sweep, the flag tables (commander options, library options and the docs
 * check from one table per program), the `--metrics-file` checks and Prometheus text helpers, the
 * option-argument parsers and password hiding. Internal: no stability promise outside those two programs.
 */
export {
  TempFile,
  assertWritable,
  atomicTarget,
  removePendingTempFiles,
  resolveTarget,
  sweepTempFiles,
  tempPathFor,
  writeFileAtomic,
  writeFileAtomicSync,
  writeFully,
  type AtomicTarget,
} from './files.js';
export {
  addFlags,
  attributeName,
  buildOptions,
  defaultText,
  docsRowStart,
  flag,
  optionsTableProblems,
  setPath,
  type BuiltOptions,
  type Flag,
} from './flags.js';
export { gauge, metricsFileArgument, metricsFileFrom, metricsFileProblem } from './metrics.js';
export {
  MAX_MS,
  certificates,
  collect,
  decimal,
  header,
  integer,
  nonEmpty,
  seconds,
  userAgent,
} from './parsers.js';
export { hidePasswords } from './passwords.js';
export { TRACEPARENT_ENV, TRACESTATE_ENV, traceFromEnv, withTrace, type RunTrace } from './trace.js';
export {
  headerFlag,
  headersOf,
  insecureFlag,
  metricsFileFlag,
  quietFlags,
  userAgentFlag,
  versionAndHelpFlags,
} from './common-flags.js';
