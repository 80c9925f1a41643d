/**
 * Which implementation serves each panel. REST polling: instruments (with last price), open
 * orders, balances, the event log. GraphQL queries (graphql.ts): candles, the order book,
 * the trades tape, positions with P&L, order history with fills. Not yet: the WebSocket
 * adapter (ws.ts) that will push book deltas, trades, candles, private order updates and
 * alerts.
 */

import type { RestClient } from "../api/rest";
import type { FeedStatus } from "./feed";
import { GraphQLAccountData, GraphQLMarketData } from "./graphql";
import { restSources } from "./rest";
import type { DataSources } from "./sources";

export type LiveStatusListener = (status: FeedStatus, detail?: string) => void;

export interface ChosenSources extends DataSources {
  /** Stop every connection these sources opened. */
  close(): void;
}

export function chooseSources(client: RestClient, onLive: LiveStatusListener): ChosenSources {
  const rest = restSources(client);
  onLive("unavailable", "the WebSocket adapter (data/ws.ts) is not wired yet: panels poll");
  return {
    ...rest,
    market: new GraphQLMarketData(client, rest.market),
    account: new GraphQLAccountData(client, rest.account),
    close() {},
  };
}
