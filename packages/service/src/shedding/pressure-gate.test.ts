import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  EventLoopSampler,
  PressureGate,
  startEventLoopMonitor,
  type EventLoopSample,
} from './pressure-gate.js';

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

describe('EventLoopSampler (time from a probe)', () => {
  /** A probe whose clock and utilisation counters the test moves. */
  function probe() {
    const state = { now: 1000, active: 0, idle: 0 };
    return {
      state,
      now: () => state.now,
      eventLoopUtilization: () => ({ active: state.active, idle: state.idle, utilization: 0 }),
    };
  }

  it('a tick on time is no delay; a late one is its lateness; below the resolution is noise', () => {
    const p = probe();
    const sampler = new EventLoopSampler(100, 10, p);
    p.state.now += 100;
    p.state.idle += 90;
    p.state.active += 10;
    assert.deepEqual(sampler.tick(), { delayMs: 0, utilization: 0.1 });
    // The loop was blocked: the next tick comes 300 ms late, and the loop was busy meanwhile.
    p.state.now += 400;
    p.state.active += 390;
    p.state.idle += 10;
    assert.deepEqual(sampler.tick(), { delayMs: 300, utilization: 0.975 });
    p.state.now += 108; // 8 ms late: under the 10 ms resolution
    p.state.idle += 108;
    assert.deepEqual(sampler.tick(), { delayMs: 0, utilization: 0 });
  });

  it('the real monitor delivers samples of the real loop, and stops', async () => {
    let next: (s: EventLoopSample) => void = () => {};
    const monitor = startEventLoopMonitor(20, (s) => next(s));
    // The monitor's timer is unref'd (it must never keep a service alive), so the test holds the loop
    // open itself while it waits; otherwise the process may end first and the test is cancelled.
    const keepAlive = setInterval(() => {}, 1000);
    try {
      const sample = await new Promise<EventLoopSample>((resolve) => (next = resolve));
      assert.ok(sample.delayMs >= 0 && sample.utilization >= 0 && sample.utilization <= 1);
      assert.equal(monitor.last, sample);
    } finally {
      clearInterval(keepAlive);
      monitor.stop();
    }
  });
});
