import { describe, expect, it } from "vitest";
import type { Instrument } from "../api/types";
import { estimateCost } from "./estimate";
import { checkTicket, priceBand, type TicketInput } from "./ticket";
import { format } from "./decimal";

export const BTC: Instrument = {
  symbol: "BTC-USD",
  base: "BTC",
  quote: "USD",
  tick_size: "0.01",
  lot_size: "0.001",
  status: "trading",
  last_price: "30000.00",
  price_band_bps: 1000,
  maker_fee_bps: 10,
  taker_fee_bps: 25,
};

const limit: TicketInput = {
  side: "buy",
  orderType: "limit",
  price: "29500.50",
  quantity: "0.015",
  timeInForce: "gtc",
  postOnly: true,
};

describe("the order ticket's checks", () => {
  it("accepts a limit order on the tick and the lot, and builds its body", () => {
    const check = checkTicket(limit, BTC);
    expect(check.errors).toEqual({});
    expect(check.body).toEqual({
      symbol: "BTC-USD",
      side: "buy",
      order_type: "limit",
      price: "29500.5",
      quantity: "0.015",
      time_in_force: "gtc",
      post_only: true,
    });
  });

  it("refuses a price off the tick and suggests the nearest ones", () => {
    const check = checkTicket({ ...limit, price: "29500.505" }, BTC);
    expect(check.body).toBeNull();
    expect(check.errors.price).toContain("tick size 0.01");
    expect(check.errors.price).toContain("29500.50 or 29500.51");
  });

  it("refuses a quantity off the lot", () => {
    const check = checkTicket({ ...limit, quantity: "0.0155" }, BTC);
    expect(check.errors.quantity).toContain("lot size 0.001");
    expect(check.body).toBeNull();
  });

  it("refuses blanks, zero, negatives and non-numbers", () => {
    expect(checkTicket({ ...limit, quantity: "" }, BTC).errors.quantity).toBe("enter a quantity");
    expect(checkTicket({ ...limit, quantity: "0" }, BTC).errors.quantity).toBe("must be more than zero");
    expect(checkTicket({ ...limit, price: "-1" }, BTC).errors.price).toBe("must be more than zero");
    expect(checkTicket({ ...limit, price: "1e5" }, BTC).errors.price).toBe("not a decimal number");
  });

  it("knows the combinations the venue refuses", () => {
    expect(checkTicket({ ...limit, timeInForce: "ioc" }, BTC).errors.postOnly).toContain("good-till-canceled");
    const market = { ...limit, orderType: "market" as const, price: "" };
    expect(checkTicket(market, BTC).errors.postOnly).toContain("cannot be post-only");
    expect(checkTicket({ ...market, postOnly: false }, BTC).errors.timeInForce).toContain("IOC or FOK");
    const ok = checkTicket({ ...market, postOnly: false, timeInForce: "ioc" }, BTC);
    expect(ok.errors).toEqual({});
    expect(ok.body?.price).toBeNull();
  });

  it("warns, without blocking, about a price outside the band", () => {
    expect(format(priceBand(BTC)!.low)).toBe("27000");
    expect(format(priceBand(BTC)!.high)).toBe("33000");
    const check = checkTicket({ ...limit, price: "20000.00" }, BTC);
    expect(check.warnings[0]).toContain("price band");
    expect(check.body).not.toBeNull();
  });

  it("warns when the market is halted", () => {
    expect(checkTicket(limit, { ...BTC, status: "halted" }).warnings).toContain("BTC-USD is halted");
  });
});

describe("the cost estimate", () => {
  it("charges the maker fee on a post-only buy", () => {
    const e = estimateCost({ ...limit, price: "30000.00", quantity: "0.5" }, BTC)!;
    expect(format(e.notional)).toBe("15000");
    expect(format(e.fee)).toBe("15");
    expect(format(e.total)).toBe("15015");
    expect(e.liquidity).toBe("maker");
  });

  it("assumes the higher fee when a limit order may take", () => {
    const e = estimateCost({ ...limit, postOnly: false, price: "30000", quantity: "1" }, BTC)!;
    expect(e.feeBps).toBe(25);
    expect(format(e.fee)).toBe("75");
    expect(e.liquidity).toBe("either");
  });

  it("nets the fee off what a sell receives", () => {
    const e = estimateCost({ ...limit, side: "sell", price: "30000", quantity: "1" }, BTC)!;
    expect(format(e.total)).toBe("29970");
  });

  it("estimates a market order at the last price, marked approximate", () => {
    const e = estimateCost({ ...limit, orderType: "market", postOnly: false, price: "", quantity: "0.1" }, BTC)!;
    expect(format(e.notional)).toBe("3000");
    expect(e.approximate).toBe(true);
    expect(e.liquidity).toBe("taker");
  });

  it("has nothing to say until the inputs are numbers", () => {
    expect(estimateCost({ ...limit, quantity: "" }, BTC)).toBeNull();
    expect(estimateCost({ ...limit, price: "abc" }, BTC)).toBeNull();
  });
});
