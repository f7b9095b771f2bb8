/**
 * @bulwark/fault-server — a fault-injecting HTTP test server and a TCP fault proxy for tests.
 * Everything binds 127.0.0.1 on an ephemeral port; `close()` clears every timer and destroys every socket.
 */
export { startFaultServer } from './server.js';
export type { FaultServer, FaultServerOptions, RequestRecord } from './server.js';
export { startFaultProxy } from './proxy.js';
export type { FaultProxy, FaultProxyOptions, ProxyFault, ProxyStream, ProxyTarget } from './proxy.js';
export { faultFromUrl, patternBody, MALFORMED_KINDS, FRAMINGS } from './faults.js';
export type { Fault, FaultScope, FaultType, Framing, MalformedKind, ResponseSpec } from './faults.js';
