/** The public REST API's shapes (docs/api.md). Decimals are strings, never numbers. */

export type Side = "buy" | "sell";
export type OrderType = "limit" | "market";
export type TimeInForce = "gtc" | "ioc" | "fok";
export type Role = "trader" | "auditor" | "admin";

export interface Token {
  access_token: string;
  token_type: "bearer";
  expires_in: number;
  refresh_token?: string | null;
}

export interface Me {
  username: string;
  role: Role;
  accounts: string[];
}

export interface Instrument {
  symbol: string;
  base: string;
  quote: string;
  tick_size: string;
  lot_size: string;
  status: string;
  last_price: string;
  price_band_bps: number;
  maker_fee_bps: number;
  taker_fee_bps: number;
}

export interface Order {
  order_id: string;
  client_order_id: string;
  account_id: string;
  symbol: string;
  side: Side;
  order_type: OrderType;
  time_in_force: TimeInForce;
  price: string;
  remaining_quantity: string;
  price_ticks: number;
  remaining_lots: number;
  resting: boolean;
}

export interface Balance {
  asset: string;
  available: string;
  reserved: string;
  available_atoms: number;
  reserved_atoms: number;
}

export interface OrderCreate {
  symbol: string;
  side: Side;
  order_type: OrderType;
  price: string | null;
  quantity: string;
  time_in_force: TimeInForce;
  post_only: boolean;
  client_order_id?: string;
}

export interface OrderAmend {
  new_price?: string;
  new_quantity?: string;
}

export interface OutcomeEvent {
  position: number | null;
  event: { event_type: string; [field: string]: unknown };
}

export interface CommandOutcome {
  command_id: string;
  correlation_id: string;
  outcome: "accepted" | "rejected";
  reason: string | null;
  duplicate: boolean;
  order_id: string | null;
  events: OutcomeEvent[];
}

export interface RecordedEvent {
  position: number;
  event_id: string;
  stream_id: string;
  stream_version: number;
  event_type: string;
  schema_version: number;
  occurred_at_ns: number;
  command_id: string;
  correlation_id: string;
  hash: string;
  event: Record<string, unknown>;
}

export type AlertCondition = "crosses_above" | "crosses_below" | "moves_pct";

/** GET /accounts/{id}/alerts */
export interface AlertOut {
  alert_id: string;
  account_id: string;
  symbol: string;
  condition: AlertCondition;
  level: string | null;
  pct: string | null;
  window_s: number | null;
  status: "active" | "triggered" | "canceled";
  created_at_ns: number;
  closed_at_ns: number | null;
}

export interface AlertCreate {
  symbol: string;
  condition: AlertCondition;
  level?: string;
  pct?: string;
  window_s?: number;
}

export interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> | null };
}
