/** The data sources on REST polling: instruments, open orders, balances, the event log. */

import type { AlertOut, Balance, Instrument, Order } from "../api/types";
import type { RestClient } from "../api/rest";
import { type Feed, FeedCache, PollingFeed, unavailable } from "./feed";
import type {
  AccountAsOf,
  AccountDataSource,
  Alert,
  AuditDataSource,
  BookView,
  Candle,
  CandleInterval,
  DataSources,
  EventQuery,
  HistoricOrder,
  MarketDataSource,
  Position,
  Trade,
} from "./sources";

export const POLL_MS = { instruments: 2_000, orders: 1_500, balances: 1_500, alerts: 5_000 } as const;

const NEEDS_WS = "live market data needs the WebSocket API (/ws)";
const NEEDS_GRAPHQL = "needs the GraphQL read models (/graphql)";

export class RestMarketData implements MarketDataSource {
  private cache = new FeedCache();

  constructor(private readonly client: RestClient) {}

  instruments(): Feed<Instrument[]> {
    return this.cache.get("instruments", () => new PollingFeed(() => this.client.instruments(), POLL_MS.instruments));
  }

  trades(_symbol: string): Feed<Trade[]> {
    return unavailable(NEEDS_WS);
  }

  book(_symbol: string): Feed<BookView> {
    return unavailable(NEEDS_WS);
  }

  candles(_symbol: string, _interval: CandleInterval): Feed<Candle[]> {
    return unavailable(NEEDS_GRAPHQL);
  }
}

export class RestAccountData implements AccountDataSource {
  private cache = new FeedCache();

  constructor(private readonly client: RestClient) {}

  openOrders(account: string): Feed<Order[]> {
    return this.cache.get(`orders:${account}`, () => new PollingFeed(() => this.client.openOrders(account), POLL_MS.orders));
  }

  balances(account: string): Feed<Balance[]> {
    return this.cache.get(`balances:${account}`, () => new PollingFeed(() => this.client.balances(account), POLL_MS.balances));
  }

  positions(_account: string): Feed<Position[]> {
    return unavailable(NEEDS_GRAPHQL);
  }

  orderHistory(_account: string): Feed<HistoricOrder[]> {
    return unavailable(NEEDS_GRAPHQL);
  }

  alerts(account: string): Feed<AlertOut[]> {
    return this.cache.get(`alerts:${account}`, () => new PollingFeed(() => this.client.alerts(account), POLL_MS.alerts));
  }

  alertNotices(_account: string): Feed<Alert[]> {
    return unavailable("notifications need the WebSocket API (the private alerts channel)");
  }
}

/** The log over REST: positions only (the filters and "as of" need GraphQL, graphql.ts). */
export class RestAuditData implements AuditDataSource {
  constructor(private readonly client: RestClient) {}

  events(query: EventQuery) {
    return this.client.events(query.after, query.limit);
  }

  accountAsOf(): Promise<AccountAsOf> {
    return Promise.reject(new Error(NEEDS_GRAPHQL));
  }
}

export function restSources(client: RestClient): DataSources {
  return {
    market: new RestMarketData(client),
    account: new RestAccountData(client),
    audit: new RestAuditData(client),
  };
}
