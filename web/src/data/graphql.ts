/**
 * ADAPTER: GraphQL (/graphql) for the panels REST cannot serve: candle history, the order
 * book and the trades tape (polled; used as they are when the WebSocket cannot be opened,
 * and as the history behind the live channels otherwise, see live.ts); positions with P&L and order history with fills from `portfolio`. Written against
 * docs/graphql.md and read_api/schema.py as they stood:
 * a query the server refuses turns the panel to "unavailable" with the server's message,
 * and nothing else breaks. Alerts wait for the WebSocket adapter.
 */

import type { RestClient } from "../api/rest";
import { type Feed, FeedCache, PollingFeed } from "./feed";
import type { RecordedEvent } from "../api/types";
import type {
  AccountAsOf,
  AccountDataSource,
  AuditDataSource,
  BookView,
  Candle,
  CandleInterval,
  EventQuery,
  HistoricOrder,
  MarketDataSource,
  MarketStat,
  Position,
  Trade,
} from "./sources";

export const GRAPHQL_POLL_MS = { candles: 5_000, book: 1_000, trades: 1_500, account: 3_000, stats: 3_000 } as const;

export class GraphQLError extends Error {
  constructor(message: string, readonly unavailable: boolean) {
    super(message);
    this.name = "GraphQLError";
  }
}

interface GraphQLResponse<T> {
  data?: T | null;
  errors?: { message: string }[];
}

/** POST one query with the REST client's token; errors become `GraphQLError`. */
export async function graphql<T>(client: RestClient, query: string, variables: Record<string, unknown>): Promise<T> {
  let body: GraphQLResponse<T>;
  try {
    body = await client.request<GraphQLResponse<T>>("POST", "/graphql", { query, variables });
  } catch (exc) {
    const status = (exc as { status?: number }).status;
    throw new GraphQLError(exc instanceof Error ? exc.message : String(exc), status === 404 || status === 405);
  }
  if (body.errors?.length) throw new GraphQLError(body.errors.map((e) => e.message).join("; "), false);
  if (body.data == null) throw new GraphQLError("empty GraphQL answer", false);
  return body.data;
}

// candleSeries: the bars as one JSON value built by the database (11 cells per row in
// `columns` order); typed `candles` costs eleven field resolutions per bar on the server.
const CANDLES = `query Candles($symbol: String!, $interval: String!, $limit: Int!, $until: DateTime) {
  candleSeries(symbol: $symbol, interval: $interval, limit: $limit, until: $until) { columns rows }
}`;

interface CandleSeriesValue {
  columns: string[];
  rows: (string | number | null)[][];
}

/** `candleSeries` rows as chart bars (cells found by column name). */
export function candlesFromSeries(series: CandleSeriesValue): Candle[] {
  const at = (name: string) => series.columns.indexOf(name);
  const [b, o, h, l, c, v] = ["bucket", "open", "high", "low", "close", "volume"].map(at);
  if ([b, o, h, l, c, v].some((i) => i === undefined || i < 0)) throw new GraphQLError("unexpected candleSeries columns", false);
  return series.rows.map((row) =>
    candleFromRow({
      bucket: String(row[b!]),
      open: String(row[o!]),
      high: String(row[h!]),
      low: String(row[l!]),
      close: String(row[c!]),
      volume: String(row[v!]),
    }),
  );
}
const STATS = `query Stats { allMarketStats { symbol open last change volume } }`;
const BOOK = `query Book($symbol: String!, $depth: Int!) {
  orderBook(symbol: $symbol, depth: $depth) { bids { price quantity } asks { price quantity } }
}`;
const TRADES = `query Trades($symbol: String!, $limit: Int!) {
  trades(symbol: $symbol, limit: $limit) { tradeId executedAtNs price quantity takerSide }
}`;

interface CandleRow { bucket: string; open: string; high: string; low: string; close: string; volume: string }
interface LevelRow { price: string; quantity: string }
interface TradeRow { tradeId: string | number; executedAtNs: string | number; price: string; quantity: string; takerSide: string }

export function candleFromRow(row: CandleRow): Candle {
  return {
    time: Math.floor(Date.parse(row.bucket) / 1000),
    open: row.open,
    high: row.high,
    low: row.low,
    close: row.close,
    volume: row.volume,
  };
}

export function tradeFromRow(symbol: string, row: TradeRow): Trade {
  const side = row.takerSide === "buy" || row.takerSide === "sell" ? row.takerSide : null;
  return {
    id: String(row.tradeId),
    symbol,
    price: row.price,
    quantity: row.quantity,
    side,
    time: Number(BigInt(row.executedAtNs) / 1_000_000n),
  };
}

/** The latest `limit` trades of a symbol, newest first, from the trades read model. */
export async function loadTrades(client: RestClient, symbol: string, limit: number): Promise<Trade[]> {
  const data = await graphql<{ trades: TradeRow[] }>(client, TRADES, { symbol, limit });
  return data.trades.map((row) => tradeFromRow(symbol, row));
}

/** Market data over GraphQL queries; `instruments` stays on REST (it has the last price). */
export class GraphQLMarketData implements MarketDataSource {
  private cache = new FeedCache();

  constructor(
    private readonly client: RestClient,
    private readonly rest: MarketDataSource,
  ) {}

  instruments() {
    return this.rest.instruments();
  }

  candles(symbol: string, interval: CandleInterval): Feed<Candle[]> {
    return this.cache.get(`candles:${symbol}:${interval}`, () =>
      new PollingFeed(async () => {
        const data = await graphql<{ candleSeries: CandleSeriesValue }>(this.client, CANDLES, { symbol, interval, limit: 300 });
        return candlesFromSeries(data.candleSeries);
      }, GRAPHQL_POLL_MS.candles),
    );
  }

  stats(): Feed<Record<string, MarketStat>> {
    return this.cache.get("stats", () =>
      new PollingFeed(async () => {
        const data = await graphql<{ allMarketStats: MarketStat[] }>(this.client, STATS, {});
        return Object.fromEntries(data.allMarketStats.map((s) => [s.symbol, s]));
      }, GRAPHQL_POLL_MS.stats),
    );
  }

  async olderCandles(symbol: string, interval: CandleInterval, before: number, limit: number): Promise<Candle[]> {
    const until = new Date(before * 1000).toISOString();
    const data = await graphql<{ candleSeries: CandleSeriesValue }>(this.client, CANDLES, { symbol, interval, limit, until });
    return candlesFromSeries(data.candleSeries);
  }

  book(symbol: string): Feed<BookView> {
    return this.cache.get(`book:${symbol}`, () =>
      new PollingFeed(async () => {
        const data = await graphql<{ orderBook: { bids: LevelRow[]; asks: LevelRow[] } }>(this.client, BOOK, {
          symbol,
          depth: 20,
        });
        const level = (l: LevelRow) => [l.price, l.quantity] as const;
        // A polled snapshot has no sequence to check: it is whole every time.
        return { bids: data.orderBook.bids.map(level), asks: data.orderBook.asks.map(level), synced: true, seq: null };
      }, GRAPHQL_POLL_MS.book),
    );
  }

  trades(symbol: string): Feed<Trade[]> {
    return this.cache.get(`trades:${symbol}`, () =>
      new PollingFeed(() => loadTrades(this.client, symbol, 50), GRAPHQL_POLL_MS.trades),
    );
  }
}

const POSITIONS = `query Positions($accountId: String!) {
  portfolio(accountId: $accountId) { positions { symbol quantity avgCost realizedPnl unrealizedPnl } }
}`;
const HISTORY = `query History($accountId: String!, $limit: Int!) {
  portfolio(accountId: $accountId) {
    orders(openOnly: false, limit: $limit) {
      orderId symbol side orderType price quantity filledQty status createdAt
      fills { liquidity price quantity fee executedAt }
    }
  }
}`;

interface PositionRow { symbol: string; quantity: string; avgCost: string | null; realizedPnl: string | null; unrealizedPnl: string | null }
interface FillRow { liquidity: string; price: string; quantity: string; fee: string; executedAt: string }
interface OrderRow {
  orderId: string; symbol: string; side: string; orderType: string; price: string; quantity: string;
  filledQty: string; status: string; createdAt: string; fills: FillRow[];
}

export function historicOrderFromRow(row: OrderRow): HistoricOrder {
  return {
    orderId: row.orderId,
    symbol: row.symbol,
    side: row.side === "sell" ? "sell" : "buy",
    price: row.orderType === "market" ? null : row.price,
    quantity: row.quantity,
    filled: row.filledQty,
    status: row.status,
    time: Date.parse(row.createdAt),
    fills: row.fills.map((f) => ({
      price: f.price,
      quantity: f.quantity,
      fee: f.fee,
      liquidity: f.liquidity,
      time: Date.parse(f.executedAt),
    })),
  };
}

/** Positions with P&L and order history with fills from the read models; the rest on REST. */
export class GraphQLAccountData implements AccountDataSource {
  private cache = new FeedCache();

  constructor(
    private readonly client: RestClient,
    private readonly rest: AccountDataSource,
  ) {}

  openOrders(account: string) {
    return this.rest.openOrders(account);
  }

  balances(account: string) {
    return this.rest.balances(account);
  }

  alerts(account: string) {
    return this.rest.alerts(account);
  }

  alertNotices(account: string) {
    return this.rest.alertNotices(account);
  }

  positions(account: string): Feed<Position[]> {
    return this.cache.get(`positions:${account}`, () =>
      new PollingFeed(async () => {
        const data = await graphql<{ portfolio: { positions: PositionRow[] } }>(this.client, POSITIONS, {
          accountId: account,
        });
        return data.portfolio.positions.map((p) => ({
          symbol: p.symbol,
          quantity: p.quantity,
          averagePrice: p.avgCost,
          realizedPnl: p.realizedPnl,
          unrealizedPnl: p.unrealizedPnl,
        }));
      }, GRAPHQL_POLL_MS.account),
    );
  }

  orderHistory(account: string): Feed<HistoricOrder[]> {
    return this.cache.get(`history:${account}`, () =>
      new PollingFeed(async () => {
        const data = await graphql<{ portfolio: { orders: OrderRow[] } }>(this.client, HISTORY, {
          accountId: account,
          limit: 50,
        });
        return data.portfolio.orders.map(historicOrderFromRow);
      }, GRAPHQL_POLL_MS.account),
    );
  }
}

const EVENTS = `query Events($filter: EventFilter, $limit: Int!) {
  events(filter: $filter, limit: $limit) {
    position eventId streamId streamVersion eventType schemaVersion occurredAtNs commandId correlationId hash payload
  }
}`;
const ACCOUNT_STATE = `query AccountState($accountId: String!, $position: BigInt, $at: DateTime) {
  accountState(accountId: $accountId, position: $position, at: $at) {
    accountId position exists replayedEvents
    balances { asset available reserved }
    openOrders { orderId symbol side price remainingQuantity }
  }
}`;

interface EventRow {
  position: string | number; eventId: string; streamId: string; streamVersion: string | number;
  eventType: string; schemaVersion: number; occurredAtNs: string | number; commandId: string;
  correlationId: string; hash: string; payload: Record<string, unknown>;
}
interface StateRow {
  accountId: string; position: string | number; exists: boolean; replayedEvents: number;
  balances: { asset: string; available: string; reserved: string }[];
  openOrders: { orderId: string; symbol: string; side: string; price: string; remainingQuantity: string }[];
}

export function eventFromRow(row: EventRow): RecordedEvent {
  return {
    position: Number(row.position),
    event_id: row.eventId,
    stream_id: row.streamId,
    stream_version: Number(row.streamVersion),
    event_type: row.eventType,
    schema_version: row.schemaVersion,
    occurred_at_ns: Number(row.occurredAtNs),
    command_id: row.commandId,
    correlation_id: row.correlationId,
    hash: row.hash,
    event: row.payload,
  };
}

/** The event history with its filters, and accounts "as of", for auditors. */
export class GraphQLAuditData implements AuditDataSource {
  constructor(private readonly client: RestClient) {}

  async events(q: EventQuery): Promise<RecordedEvent[]> {
    const filter = {
      afterPosition: String(q.after),
      toPosition: q.toPosition === undefined ? null : String(q.toPosition),
      accountId: q.account || null,
      symbol: q.symbol || null,
      eventTypes: q.types?.length ? q.types : null,
      since: q.since || null,
      until: q.until || null,
    };
    const data = await graphql<{ events: EventRow[] }>(this.client, EVENTS, { filter, limit: q.limit });
    return data.events.map(eventFromRow);
  }

  async accountAsOf(account: string, at: { position: number } | { time: string }): Promise<AccountAsOf> {
    const variables =
      "position" in at
        ? { accountId: account, position: String(at.position), at: null }
        : { accountId: account, position: null, at: at.time };
    const { accountState: s } = await graphql<{ accountState: StateRow }>(this.client, ACCOUNT_STATE, variables);
    return {
      account: s.accountId,
      position: Number(s.position),
      exists: s.exists,
      replayedEvents: s.replayedEvents,
      balances: s.balances,
      openOrders: s.openOrders.map((o) => ({
        orderId: o.orderId,
        symbol: o.symbol,
        side: o.side,
        price: o.price,
        remaining: o.remainingQuantity,
      })),
    };
  }
}
