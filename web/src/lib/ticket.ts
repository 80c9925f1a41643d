/**
 * The order ticket's rules, checked before anything is sent: price on the tick, quantity on
 * the lot, the combinations the venue accepts (docs/commands.md), and the price band as a
 * warning. The server stays the judge: whatever passes here may still be refused, and the
 * refusal's reason is shown.
 */

import type { Instrument, OrderCreate, OrderType, Side, TimeInForce } from "../api/types";
import {
  cmp,
  type Dec,
  dec,
  format,
  isPositive,
  parseDec,
  placesOf,
  roundToStep,
  stepsOf,
} from "./decimal";

export interface TicketInput {
  side: Side;
  orderType: OrderType;
  price: string;
  quantity: string;
  timeInForce: TimeInForce;
  postOnly: boolean;
}

export type TicketField = "price" | "quantity" | "timeInForce" | "postOnly";

export interface TicketCheck {
  /** One message per field that blocks sending. */
  errors: Partial<Record<TicketField, string>>;
  /** Advice that does not block sending (the server decides). */
  warnings: string[];
  /** The body to POST when there are no errors. */
  body: OrderCreate | null;
}

function nearest(value: Dec, step: Dec): string {
  const down = format(roundToStep(value, step, "down"), placesOf(step));
  const up = format(roundToStep(value, step, "up"), placesOf(step));
  return down === up ? down : `${down} or ${up}`;
}

/** The price band around the last price: [last * (1 - band), last * (1 + band)]. */
export function priceBand(inst: Instrument): { low: Dec; high: Dec } | null {
  const last = parseDec(inst.last_price);
  if (last === null || !isPositive(last) || inst.price_band_bps <= 0) return null;
  const tick = dec(inst.tick_size);
  const lastTicks = stepsOf(roundToStep(last, tick, "down"), tick) ?? 0n;
  const band = BigInt(inst.price_band_bps);
  // Rounded inwards like the venue (domain/instruments.py reference_band).
  const lowTicks = -((-lastTicks * (10_000n - band)) / 10_000n);
  const highTicks = (lastTicks * (10_000n + band)) / 10_000n;
  return {
    low: { units: tick.units * lowTicks, scale: tick.scale },
    high: { units: tick.units * highTicks, scale: tick.scale },
  };
}

export function checkTicket(input: TicketInput, inst: Instrument): TicketCheck {
  const errors: TicketCheck["errors"] = {};
  const warnings: string[] = [];
  const tick = dec(inst.tick_size);
  const lot = dec(inst.lot_size);

  const quantity = parseDec(input.quantity);
  if (input.quantity.trim() === "") errors.quantity = "enter a quantity";
  else if (quantity === null) errors.quantity = "not a decimal number";
  else if (!isPositive(quantity)) errors.quantity = "must be more than zero";
  else if (stepsOf(quantity, lot) === null)
    errors.quantity = `must be a multiple of the lot size ${inst.lot_size}: try ${nearest(quantity, lot)}`;

  let price: Dec | null = null;
  if (input.orderType === "limit") {
    price = parseDec(input.price);
    if (input.price.trim() === "") errors.price = "enter a price";
    else if (price === null) errors.price = "not a decimal number";
    else if (!isPositive(price)) errors.price = "must be more than zero";
    else if (stepsOf(price, tick) === null)
      errors.price = `must be a multiple of the tick size ${inst.tick_size}: try ${nearest(price, tick)}`;
    else {
      const band = priceBand(inst);
      if (band !== null && (cmp(price, band.low) < 0 || cmp(price, band.high) > 0)) {
        const places = placesOf(tick);
        warnings.push(
          `outside the price band around the last price (${format(band.low, places)}` +
            ` to ${format(band.high, places)}): the venue will likely refuse it`,
        );
      }
    }
    if (input.postOnly && input.timeInForce !== "gtc")
      errors.postOnly = "post-only orders must be good-till-canceled";
  } else {
    if (input.postOnly) errors.postOnly = "a market order cannot be post-only";
    if (input.timeInForce === "gtc")
      errors.timeInForce = "a market order is immediate: choose IOC or FOK";
  }
  if (inst.status !== "trading") warnings.push(`${inst.symbol} is ${inst.status}`);

  const ok = Object.keys(errors).length === 0 && quantity !== null;
  const body: OrderCreate | null = ok
    ? {
        symbol: inst.symbol,
        side: input.side,
        order_type: input.orderType,
        price: input.orderType === "limit" && price !== null ? format(price) : null,
        quantity: format(quantity),
        time_in_force: input.timeInForce,
        post_only: input.postOnly,
      }
    : null;
  return { errors, warnings, body };
}
