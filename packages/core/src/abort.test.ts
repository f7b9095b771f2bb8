import { it } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { onAbort } from './abort.js';
import { setListenerErrorHandler } from './events.js';

it('one listener per signal however many callbacks, removed when the last one leaves', () => {
  const controller = new AbortController();
  const signal = controller.signal;
  const offs = Array.from({ length: 1000 }, () => onAbort(signal, () => {}));
  assert.equal(getEventListeners(signal, 'abort').length, 1);
  for (const off of offs) off();
  assert.equal(getEventListeners(signal, 'abort').length, 0);
  offs[0]!(); // idempotent
  assert.equal(getEventListeners(signal, 'abort').length, 0);
});

it('calls every remaining callback once on abort, in registration order, even the same function twice', () => {
  const controller = new AbortController();
  const calls: string[] = [];
  const same = () => calls.push('same');
  onAbort(controller.signal, () => calls.push('a'));
  const offB = onAbort(controller.signal, () => calls.push('b'));
  onAbort(controller.signal, same);
  onAbort(controller.signal, same);
  offB();
  controller.abort();
  controller.abort();
  assert.deepEqual(calls, ['a', 'same', 'same']);
  assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
});

it('a throwing callback does not stop the others, and goes to the listener-error handler', () => {
  const controller = new AbortController();
  let reached = false;
  const errors: unknown[] = [];
  const previous = setListenerErrorHandler((e) => errors.push(e));
  try {
    onAbort(controller.signal, () => {
      throw new Error('callback bug');
    });
    onAbort(controller.signal, () => (reached = true));
    controller.abort();
  } finally {
    setListenerErrorHandler(previous);
  }
  assert.equal(reached, true);
  assert.match(String(errors[0]), /callback bug/);
});

it('removing and adding 10,000 callbacks on one signal is linear, not quadratic', () => {
  // With EventTarget alone this pattern walks the listener list on every removal.
  const signal = new AbortController().signal;
  const offs: (() => void)[] = [];
  for (let i = 0; i < 10_000; i++) offs.push(onAbort(signal, () => {}));
  for (const off of offs) off();
  assert.equal(getEventListeners(signal, 'abort').length, 0);
});
