// `@bulwark/core/testing`: helpers for tests of code built on Bulwark (time moved by hand, no sleeps).
export { FakeClock, flushMicrotasks } from './clock.js';
export { nodeSnapshotFs } from './snapshot/fs.js';
