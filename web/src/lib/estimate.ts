/**
 * What an order would cost: notional, fee and the total in the quote asset, exactly
 * (decimal strings, never floats). A market order is estimated at the last price.
 */

import type { Instrument, Side } from "../api/types";
import { add, bps, type Dec, isPositive, mul, parseDec, sub } from "./decimal";

export type Liquidity = "maker" | "taker" | "either";

export interface CostEstimate {
  notional: Dec;
  /** The fee at the rate that applies (the higher, taker, one when it could be either). */
  fee: Dec;
  feeBps: number;
  liquidity: Liquidity;
  /** Buy: notional + fee to pay. Sell: notional - fee to receive. */
  total: Dec;
  /** True when the price is a guess (market orders use the last price). */
  approximate: boolean;
}

export interface EstimateInput {
  side: Side;
  orderType: "limit" | "market";
  price: string;
  quantity: string;
  postOnly: boolean;
}

export function liquidityOf(input: Pick<EstimateInput, "orderType" | "postOnly">): Liquidity {
  if (input.orderType === "market") return "taker";
  return input.postOnly ? "maker" : "either";
}

/** `null` when the inputs are not (yet) numbers. */
export function estimateCost(input: EstimateInput, inst: Instrument): CostEstimate | null {
  const quantity = parseDec(input.quantity);
  const price = input.orderType === "market" ? parseDec(inst.last_price) : parseDec(input.price);
  if (quantity === null || price === null || !isPositive(quantity) || !isPositive(price))
    return null;
  const liquidity = liquidityOf(input);
  const feeBps =
    liquidity === "maker" ? inst.maker_fee_bps : Math.max(inst.maker_fee_bps, inst.taker_fee_bps);
  const notional = mul(price, quantity);
  const fee = bps(notional, feeBps);
  const total = input.side === "buy" ? add(notional, fee) : sub(notional, fee);
  return { notional, fee, feeBps, liquidity, total, approximate: input.orderType === "market" };
}
