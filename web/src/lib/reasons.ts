/** Human words for the venue's machine-readable rejection reasons (docs/events.md). */

const REASONS: Record<string, string> = {
  insufficient_funds: "insufficient funds",
  tick_size: "the price is not a multiple of the tick size",
  lot_size: "the quantity is not a multiple of the lot size",
  min_qty: "the quantity is below the minimum",
  max_qty: "the quantity is above the maximum",
  price_band: "the price is outside the allowed band around the reference price",
  post_only_would_take: "post-only: the order would have traded immediately",
  amend_would_take: "the amended order would have traded immediately",
  unknown_symbol: "unknown symbol",
  unknown_account: "unknown account",
  trading_halted: "trading is halted",
  duplicate_client_order_id: "an order with this client order id already exists",
  unknown_order: "the order is no longer open",
  not_order_owner: "not your order",
  invalid_quantity: "invalid quantity",
  invalid_price: "invalid price",
  invalid_time_in_force: "invalid time in force",
  invalid_post_only: "post-only is not allowed here",
  nothing_to_amend: "nothing to amend",
};

/** "insufficient funds (insufficient_funds)"; unknown codes are shown as they are. */
export function describeReason(reason: string | null | undefined): string {
  if (!reason) return "refused";
  const words = REASONS[reason];
  return words ? `${words} (${reason})` : reason;
}
