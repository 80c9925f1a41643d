/**
 * The typed data-source interfaces the panels are written against. `rest.ts` implements
 * them with REST polling where REST has the data; `graphql.ts` and `ws.ts` are the adapters
 * for the GraphQL and WebSocket APIs (docs/graphql.md, docs/websocket.md); `index.ts`
 * picks, per panel, the best source available.
 */

import type { AlertOut, Balance, Instrument, Order, RecordedEvent, Side } from "../api/types";
import type { Level } from "../lib/book";
import type { Feed } from "./feed";

export type CandleInterval = "1m" | "5m" | "15m" | "1h" | "1d";
export const CANDLE_INTERVALS: readonly CandleInterval[] = ["1m", "5m", "15m", "1h", "1d"];

export interface Trade {
  id: string;
  symbol: string;
  price: string;
  quantity: string;
  /** The taker's side: a "buy" lifted an offer. */
  side: Side | null;
  /** ms since the epoch (UTC). */
  time: number;
}

export interface BookView {
  bids: Level[];
  asks: Level[];
  /** False while a sequence gap is being repaired (the ladder greys out). */
  synced: boolean;
  seq: number | null;
}

export interface Candle {
  /** Start of the bucket, seconds since the epoch (UTC), as lightweight-charts wants. */
  time: number;
  open: string;
  high: string;
  low: string;
  close: string;
  volume: string;
}

export interface Position {
  symbol: string;
  quantity: string;
  averagePrice: string | null;
  realizedPnl: string | null;
  unrealizedPnl: string | null;
}

export interface Fill {
  price: string;
  quantity: string;
  fee: string | null;
  liquidity: string | null;
  time: number;
}

export interface HistoricOrder {
  orderId: string;
  symbol: string;
  side: Side;
  price: string | null;
  quantity: string;
  filled: string;
  status: string;
  time: number;
  fills: Fill[];
}

/** A notification: an alert of the account fired. */
export interface Alert {
  id: string;
  message: string;
  time: number;
}

/** A symbol's last 24 hours, from the market statistics read model. */
export interface MarketStat {
  symbol: string;
  last: string;
  open: string;
  /** last − open */
  change: string;
  volume: string;
}

export interface MarketDataSource {
  instruments(): Feed<Instrument[]>;
  /** 24-hour statistics by symbol. */
  stats?(): Feed<Record<string, MarketStat>>;
  trades(symbol: string): Feed<Trade[]>;
  book(symbol: string): Feed<BookView>;
  candles(symbol: string, interval: CandleInterval): Feed<Candle[]>;
  /** Up to `limit` closed bars before `before` (seconds), oldest first: scrolling back. */
  olderCandles?(symbol: string, interval: CandleInterval, before: number, limit: number): Promise<Candle[]>;
}

export interface AccountDataSource {
  openOrders(account: string): Feed<Order[]>;
  balances(account: string): Feed<Balance[]>;
  positions(account: string): Feed<Position[]>;
  orderHistory(account: string): Feed<HistoricOrder[]>;
  /** The account's price alerts (active, triggered, canceled). */
  alerts(account: string): Feed<AlertOut[]>;
  /** Alerts that fire while the page is open, newest first. */
  alertNotices(account: string): Feed<Alert[]>;
}

/** Which events an auditor asks for; every field narrows the answer. */
export interface EventQuery {
  /** Log positions after this one (exclusive) … */
  after: number;
  /** … up to and including this one. */
  toPosition?: number;
  account?: string;
  symbol?: string;
  /** Exact event types, e.g. ["OrderAccepted", "TradeExecuted"]. */
  types?: string[];
  /** ISO times (UTC), inclusive. */
  since?: string;
  until?: string;
  limit: number;
}

export interface BalanceAsOf {
  asset: string;
  available: string;
  reserved: string;
}

export interface OrderAsOf {
  orderId: string;
  symbol: string;
  side: string;
  price: string;
  remaining: string;
}

/** An account replayed from the log up to a position (what it was then). */
export interface AccountAsOf {
  account: string;
  position: number;
  exists: boolean;
  balances: BalanceAsOf[];
  openOrders: OrderAsOf[];
  replayedEvents: number;
}

export interface AuditDataSource {
  /** The committed log, in order, filtered (auditor and admin only). */
  events(query: EventQuery): Promise<RecordedEvent[]>;
  /** An account as of a log position, or as of a time (ISO, UTC). */
  accountAsOf(account: string, at: { position: number } | { time: string }): Promise<AccountAsOf>;
}

export interface DataSources {
  market: MarketDataSource;
  account: AccountDataSource;
  audit: AuditDataSource;
}
