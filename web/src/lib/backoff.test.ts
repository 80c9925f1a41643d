import { describe, expect, it } from "vitest";
import { Backoff } from "./backoff";

const options = { baseMs: 100, maxMs: 1_000, factor: 2, stableMs: 5_000 };

describe("reconnect backoff", () => {
  it("doubles the ceiling per failure up to the cap", () => {
    const backoff = new Backoff(options, () => 0.999999);
    const delays = Array.from({ length: 6 }, () => backoff.next());
    expect(delays).toEqual([99, 199, 399, 799, 999, 999]);
    expect(backoff.failures).toBe(6);
  });

  it("jitters between zero and the ceiling", () => {
    const backoff = new Backoff(options, () => 0);
    expect(backoff.next()).toBe(0);
    const half = new Backoff(options, () => 0.5);
    half.next();
    expect(half.next()).toBe(100);
  });

  it("starts over after a connection that stayed up, not after a flapping one", () => {
    const backoff = new Backoff(options, () => 0.999999);
    backoff.next();
    backoff.next();
    backoff.closedAfter(1_000);
    expect(backoff.ceiling()).toBe(400);
    backoff.closedAfter(5_000);
    expect(backoff.ceiling()).toBe(100);
  });
});
