/**
 * When a response is over, however it ends: answered, or the connection closed first.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * Calls `fn` once, when `res` closes. A response queued behind another on a pipelined connection has no
 * socket yet, and on Node 22 (not 24) it never emits 'close' when the connection closes before its turn
 * (a client that pipelines two requests and resets): its request's socket closing ends it too. Without
 * this, such a request held its concurrency slot for good on Node 22.
 */
export function onResponseEnd(req: IncomingMessage, res: ServerResponse, fn: () => void): void {
  let called = false;
  const once = () => {
    if (called) return;
    called = true;
    fn();
  };
  res.on('close', once);
  const socket = req.socket as IncomingMessage['socket'] | null;
  if (res.socket === null && socket !== null && !socket.destroyed) {
    socket.once('close', once);
    res.once('close', () => socket.removeListener('close', once));
  }
}
