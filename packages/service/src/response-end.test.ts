// onResponseEnd over a real socket: every response queued on a pipelined connection ends exactly once,
// answered or cut, and the connection's socket gets one 'close' listener however many queue behind it.
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { onResponseEnd } from './response-end.js';

const PIPELINED = 30;
let server: Server;
let port = 0;
const events = new EventEmitter();
events.setMaxListeners(0);
let held: Array<{ req: IncomingMessage; res: ServerResponse }> = [];
const ended = new Map<string, number>();
const warnings: Error[] = [];
const onWarning = (w: Error) => warnings.push(w);

before(async () => {
  process.on('warning', onWarning);
  server = createServer((req, res) => {
    const id = req.url!;
    onResponseEnd(req, res, () => {
      ended.set(id, (ended.get(id) ?? 0) + 1);
      events.emit('ended');
    });
    held.push({ req, res });
    events.emit('request');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});

after(async () => {
  process.off('warning', onWarning);
  server.closeAllConnections();
  server.close();
  await once(server, 'close');
});

async function pipeline(tag: string): Promise<Socket> {
  held = [];
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.on('error', () => undefined);
  socket.resume();
  let text = '';
  for (let i = 0; i < PIPELINED; i++) text += `GET /${tag}${i} HTTP/1.1\r\nhost: x\r\n\r\n`;
  socket.write(text);
  while (held.length < PIPELINED) await once(events, 'request');
  return socket;
}

async function allEnded(tag: string): Promise<void> {
  const done = () => [...ended.keys()].filter((k) => k.startsWith(`/${tag}`)).length === PIPELINED;
  while (!done()) await once(events, 'ended');
  await new Promise((r) => setImmediate(r)); // a second call would come in the same turn
}

it(`${PIPELINED} pipelined responses, answered in turn: each ends once; the socket has one close listener`, async () => {
  const socket = await pipeline('a');
  const serverSocket = held[0]!.req.socket;
  assert.ok(serverSocket.listenerCount('close') <= 3, `${serverSocket.listenerCount('close')} listeners`);
  for (const { res } of held) res.end('ok');
  await allEnded('a');
  for (let i = 0; i < PIPELINED; i++) assert.equal(ended.get(`/a${i}`), 1, `/a${i}`);
  socket.destroy();
  assert.deepEqual(
    warnings.filter((w) => w.name === 'MaxListenersExceededWarning'),
    [],
  );
});

it(`${PIPELINED} pipelined responses, the client resets before any answer: each ends once`, async () => {
  const socket = await pipeline('b');
  socket.resetAndDestroy();
  await allEnded('b');
  for (let i = 0; i < PIPELINED; i++) assert.equal(ended.get(`/b${i}`), 1, `/b${i}`);
  assert.deepEqual(
    warnings.filter((w) => w.name === 'MaxListenersExceededWarning'),
    [],
  );
});
