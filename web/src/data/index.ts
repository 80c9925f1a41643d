/**
 * Which implementation serves each panel. The WebSocket API (ws.ts, live.ts) pushes the
 * order book, the trades tape, the live candle and order updates; GraphQL (graphql.ts)
 * serves candle history, positions with P&L, order history and the auditor's filtered
 * event history and "as of" accounts; REST polling (rest.ts)
 * serves instruments, open orders and balances. Without a WebSocket (an old
 * browser, a test), the GraphQL adapters poll instead.
 */

import type { RestClient } from "../api/rest";
import type { FeedStatus } from "./feed";
import { GraphQLAccountData, GraphQLAuditData, GraphQLMarketData } from "./graphql";
import { LiveAccountData, LiveMarketData } from "./live";
import { restSources } from "./rest";
import type { DataSources } from "./sources";
import { LiveConnection } from "./ws";

export type LiveStatusListener = (status: FeedStatus, detail?: string) => void;

export interface ChosenSources extends DataSources {
  /** Stop every connection these sources opened. */
  close(): void;
}

/** ws(s)://<this page's host>/ws */
export function defaultWsUrl(): string {
  const { protocol, host } = window.location;
  return `${protocol === "https:" ? "wss" : "ws"}://${host}/ws`;
}

export function chooseSources(client: RestClient, onLive: LiveStatusListener, wsUrl?: string): ChosenSources {
  const rest = restSources(client);
  const market = new GraphQLMarketData(client, rest.market);
  const account = new GraphQLAccountData(client, rest.account);
  const audit = new GraphQLAuditData(client);
  if (typeof WebSocket === "undefined") {
    onLive("unavailable", "this browser has no WebSocket: panels poll");
    return { ...rest, market, account, audit, close() {} };
  }
  const live = new LiveConnection(wsUrl ?? defaultWsUrl(), () => client.accessToken, onLive);
  live.start();
  const liveMarket = new LiveMarketData(client, live, market);
  return {
    ...rest,
    market: liveMarket,
    account: new LiveAccountData(live, account, liveMarket.unitsOf),
    audit,
    close() {
      live.stop();
    },
  };
}
