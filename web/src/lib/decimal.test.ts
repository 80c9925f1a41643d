import { describe, expect, it } from "vitest";
import { add, bps, cmp, dec, format, mul, parseDec, placesOf, roundTo, roundToStep, stepsOf, sub } from "./decimal";

describe("decimal", () => {
  it("parses decimal strings exactly and refuses everything else", () => {
    expect(parseDec("123.450")).toEqual({ units: 123450n, scale: 3 });
    expect(parseDec("-0.5")).toEqual({ units: -5n, scale: 1 });
    for (const bad of ["", "1e3", "1.", ".5", "abc", "1,5", "NaN", "1.2.3"]) expect(parseDec(bad)).toBeNull();
  });

  it("adds, subtracts and multiplies without binary floats", () => {
    expect(format(add(dec("0.1"), dec("0.2")))).toBe("0.3");
    expect(format(sub(dec("1"), dec("0.9")))).toBe("0.1");
    expect(format(mul(dec("30000.50"), dec("0.003")))).toBe("90.0015");
    expect(format(bps(dec("100"), 25))).toBe("0.25");
  });

  it("compares across scales", () => {
    expect(cmp(dec("1.50"), dec("1.5"))).toBe(0);
    expect(cmp(dec("-2"), dec("1"))).toBe(-1);
    expect(cmp(dec("10"), dec("9.99"))).toBe(1);
  });

  it("counts steps only for exact multiples", () => {
    expect(stepsOf(dec("100.25"), dec("0.05"))).toBe(2005n);
    expect(stepsOf(dec("100.26"), dec("0.05"))).toBeNull();
    expect(stepsOf(dec("3"), dec("0.001"))).toBe(3000n);
  });

  it("rounds to a step in both directions", () => {
    expect(format(roundToStep(dec("100.26"), dec("0.05"), "down"))).toBe("100.25");
    expect(format(roundToStep(dec("100.26"), dec("0.05"), "up"))).toBe("100.3");
    expect(format(roundToStep(dec("-1.3"), dec("0.5"), "down"))).toBe("-1.5");
  });

  it("rounds to places half away from zero, or up", () => {
    expect(format(roundTo(dec("1.005"), 2))).toBe("1.01");
    expect(format(roundTo(dec("-1.005"), 2))).toBe("-1.01");
    expect(format(roundTo(dec("1.001"), 2, "up"))).toBe("1.01");
  });

  it("formats canonically, with optional minimum places", () => {
    expect(format(dec("0.0001"))).toBe("0.0001");
    expect(format(dec("-0.00"))).toBe("0");
    expect(format(dec("12"), 2)).toBe("12.00");
    expect(placesOf(dec("0.010"))).toBe(2);
    expect(placesOf(dec("5"))).toBe(0);
  });
});

describe("decimals as the server prints them", async () => {
  const { display, parseServerDec } = await import("./decimal");
  it("reads exponent notation exactly", () => {
    expect(parseServerDec("0E-8")).toEqual({ units: 0n, scale: 8 });
    expect(parseServerDec("1.5E+3")).toEqual({ units: 15000n, scale: 1 });
    expect(display("0E-8")).toBe("0");
    expect(display("100.00000000")).toBe("100");
    expect(display("999969.940000", 2)).toBe("999969.94");
    expect(display("n/a")).toBe("n/a");
  });
});
