/**
 * When a response is over, however it ends: answered, or the connection closed first.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** Per socket, the ends waiting for it to close: one 'close' listener per socket, however many queue. */
const waiting = new WeakMap<Socket, Set<() => void>>();

/** Calls `fn` when `socket` closes; returns a function that cancels it. */
function onSocketClose(socket: Socket, fn: () => void): () => void {
  let ends = waiting.get(socket);
  if (ends === undefined) {
    const set = new Set<() => void>();
    ends = set;
    waiting.set(socket, set);
    socket.once('close', () => {
      waiting.delete(socket);
      for (const end of set) end();
    });
  }
  const set = ends;
  set.add(fn);
  return () => set.delete(fn);
}

/**
 * Calls `fn` once, when `res` closes. A response queued behind another on a pipelined connection has no
 * socket yet, and on Node 22 (not 24) it never emits 'close' when the connection closes before its turn
 * (a client that pipelines two requests and resets): its request's socket closing ends it too. Without
 * this, such a request held its concurrency slot for good on Node 22. However many responses queue on
 * one connection, the socket gets one listener (no MaxListenersExceededWarning past ten).
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
    res.once('close', onSocketClose(socket, once));
  }
}
