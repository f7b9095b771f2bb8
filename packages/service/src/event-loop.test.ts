import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PressureGate, startEventLoopMonitor, type EventLoopSample } from './event-loop.js';

const calm: EventLoopSample = { delayMs: 1, utilization: 0.2 };
const slow: EventLoopSample = { delayMs: 500, utilization: 0.2 };

describe('PressureGate', () => {
  it('sheds nothing while calm', () => {
    const gate = new PressureGate({ random: () => 0 });
    gate.update(calm);
    assert.equal(gate.shedRatio, 0);
    assert.equal(gate.shouldShed(), false);
  });

  it('ramps the shed ratio up fast while pressured, down slowly once calm, capped at maxShedRatio', () => {
    const gate = new PressureGate({ maxEventLoopDelayMs: 100, increaseStep: 0.25, decreaseStep: 0.1 });
    gate.update(slow);
    assert.equal(gate.pressured, true);
    assert.equal(gate.shedRatio, 0.25);
    for (let i = 0; i < 10; i++) gate.update(slow);
    assert.equal(gate.shedRatio, 0.95);
    gate.update(calm);
    assert.equal(gate.pressured, false);
    assert.equal(Number((gate.shedRatio as number).toFixed(2)), 0.85);
    for (let i = 0; i < 20; i++) gate.update(calm);
    assert.equal(gate.shedRatio, 0);
  });

  it('sheds a request when random() falls under the ratio', () => {
    let r = 0.5;
    const gate = new PressureGate({ increaseStep: 0.4, random: () => r });
    gate.update(slow);
    assert.equal(gate.shouldShed(), false); // 0.5 ≥ 0.4
    r = 0.39;
    assert.equal(gate.shouldShed(), true);
  });

  it('watches utilisation only when its threshold is set', () => {
    const busy = { delayMs: 0, utilization: 0.99 };
    const a = new PressureGate();
    a.update(busy);
    assert.equal(a.pressured, false);
    const b = new PressureGate({ maxEventLoopUtilization: 0.9 });
    b.update(busy);
    assert.equal(b.pressured, true);
    const off = new PressureGate({ maxEventLoopDelayMs: 0 });
    assert.equal(off.disabled, true);
    off.update(slow);
    assert.equal(off.pressured, false);
  });

  it('validates options', () => {
    assert.throws(() => new PressureGate({ maxEventLoopUtilization: 2 }), /pressure.maxEventLoopUtilization/);
    assert.throws(() => new PressureGate({ increaseStep: 0 }), /pressure.increaseStep/);
    assert.throws(() => new PressureGate({ maxDelay: 1 } as never), /pressure.maxDelay/);
  });
});

describe('startEventLoopMonitor', () => {
  it('reports a blocked loop as delay and high utilisation', async () => {
    const samples: EventLoopSample[] = [];
    let next: (s: EventLoopSample) => void = () => {};
    const monitor = startEventLoopMonitor(
      100,
      (s) => {
        samples.push(s);
        next(s);
      },
      10,
    );
    const sample = () => new Promise<EventLoopSample>((resolve) => (next = resolve));
    try {
      await sample(); // the monitor runs
      const end = Date.now() + 300;
      while (Date.now() < end); // block the loop for 300 ms (at least: a busy machine only adds)
      const after = await sample(); // the first sample after the block saw it
      assert.ok(after.delayMs >= 150, `delay ${after.delayMs} ms after a 300 ms block`);
      assert.ok(after.utilization > 0.5, `utilization ${after.utilization}`);
      assert.equal(monitor.last, samples.at(-1));
    } finally {
      monitor.stop();
    }
  });
});
