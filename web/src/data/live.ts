/**
 * The panels on the WebSocket API where it pushes (book, trades, the live candle, order
 * updates), with the GraphQL and REST adapters for history and for what it does not carry.
 */

import type { RestClient } from "../api/rest";
import type { AlertOut, Balance, Order } from "../api/types";
import { type Feed, FeedCache } from "./feed";
import { type GraphQLAccountData, type GraphQLMarketData, loadTrades } from "./graphql";
import type {
  AccountDataSource,
  Alert,
  BookView,
  Candle,
  CandleInterval,
  HistoricOrder,
  MarketDataSource,
  Position,
  Trade,
} from "./sources";
import {
  alertNotices,
  bookFeed,
  candlesFeed,
  type LiveConnection,
  refreshedBy,
  TAPE_LENGTH,
  tradesFeed,
  Units,
  type UnitsOf,
} from "./ws";

export class LiveMarketData implements MarketDataSource {
  private cache = new FeedCache();
  private units = new Map<string, Promise<Units>>();

  constructor(
    private readonly client: RestClient,
    private readonly live: LiveConnection,
    private readonly history: GraphQLMarketData,
  ) {}

  /** Tick and lot sizes of `symbol`, asked for once (again after a failure). */
  unitsOf = (symbol: string): Promise<Units> => {
    let units = this.units.get(symbol);
    if (units === undefined) {
      units = this.client.instruments().then((list) => {
        const instrument = list.find((i) => i.symbol === symbol);
        if (instrument === undefined) throw new Error(`${symbol} is not listed`);
        return new Units(instrument.tick_size, instrument.lot_size);
      });
      units.catch(() => this.units.delete(symbol));
      this.units.set(symbol, units);
    }
    return units;
  };

  instruments() {
    return this.history.instruments();
  }

  stats() {
    return this.history.stats();
  }

  book(symbol: string): Feed<BookView> {
    return this.cache.get(`book:${symbol}`, () => bookFeed(this.live, this.unitsOf, symbol));
  }

  trades(symbol: string): Feed<Trade[]> {
    return this.cache.get(`trades:${symbol}`, () =>
      tradesFeed(this.live, this.unitsOf, symbol, () => loadTrades(this.client, symbol, TAPE_LENGTH)),
    );
  }

  olderCandles(symbol: string, interval: CandleInterval, before: number, limit: number): Promise<Candle[]> {
    return this.history.olderCandles(symbol, interval, before, limit);
  }

  candles(symbol: string, interval: CandleInterval): Feed<Candle[]> {
    return this.cache.get(`candles:${symbol}:${interval}`, () =>
      candlesFeed(this.live, this.unitsOf, symbol, interval, this.history.candles(symbol, interval)),
    );
  }
}

/** Account panels stay on their polled sources, refreshed at once by `orders.<ACCOUNT>`. */
export class LiveAccountData implements AccountDataSource {
  private cache = new FeedCache();

  constructor(
    private readonly live: LiveConnection,
    private readonly polled: GraphQLAccountData,
    private readonly unitsOf: UnitsOf,
  ) {}

  private pushed<T>(kind: string, account: string, feed: Feed<T>): Feed<T> {
    return this.cache.get(`${kind}:${account}`, () => refreshedBy(this.live, `orders.${account}`, feed));
  }

  openOrders(account: string): Feed<Order[]> {
    return this.pushed("orders", account, this.polled.openOrders(account));
  }

  balances(account: string): Feed<Balance[]> {
    return this.pushed("balances", account, this.polled.balances(account));
  }

  positions(account: string): Feed<Position[]> {
    return this.pushed("positions", account, this.polled.positions(account));
  }

  orderHistory(account: string): Feed<HistoricOrder[]> {
    return this.pushed("history", account, this.polled.orderHistory(account));
  }

  alerts(account: string): Feed<AlertOut[]> {
    return this.cache.get(`alerts:${account}`, () =>
      refreshedBy(this.live, `alerts.${account}`, this.polled.alerts(account)),
    );
  }

  alertNotices(account: string): Feed<Alert[]> {
    return this.cache.get(`notices:${account}`, () => alertNotices(this.live, this.unitsOf, account));
  }
}
