import { describe, expect, it } from "vitest";
import type { Candle } from "../data/sources";
import { mergeBars } from "./CandleChart";

const bar = (time: number, close: string): Candle => ({ time, open: "1", high: "2", low: "1", close, volume: "1" });

describe("scrolling the chart back", () => {
  it("puts older bars before the feed's, and the feed's bar wins a shared time", () => {
    const merged = mergeBars([bar(60, "old"), bar(120, "old")], [bar(120, "live"), bar(180, "live")]);
    expect(merged.map((b) => [b.time, b.close])).toEqual([
      [60, "old"],
      [120, "live"],
      [180, "live"],
    ]);
  });
});

describe("the market list", () => {
  it("shows the 24-hour change as a percentage of the open", async () => {
    const { changePercent } = await import("./MarketList");
    expect(changePercent({ symbol: "X", open: "200", last: "205", change: "5", volume: "1" })).toBe("+2.50%");
    expect(changePercent({ symbol: "X", open: "200", last: "190", change: "-10", volume: "1" })).toBe("-5.00%");
    expect(changePercent(undefined)).toBe("–");
  });
});
