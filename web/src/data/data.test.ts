import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ApiError, memorySessionStore, RestClient } from "../api/rest";
import { type FeedUpdate, PollingFeed } from "./feed";
import { candleFromRow, GraphQLError, tradeFromRow } from "./graphql";

describe("the polling feed", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("shares one poller, polls on an interval and stops with the last listener", async () => {
    let calls = 0;
    const feed = new PollingFeed(async () => ++calls, 1_000);
    const seen: FeedUpdate<number>[] = [];
    const stop1 = feed.subscribe((u) => seen.push(u));
    const stop2 = feed.subscribe(() => {});
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(calls).toBe(2);
    expect(seen.at(-1)).toEqual({ status: "polling", value: 2 });
    stop1();
    stop2();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(calls).toBe(2);
  });

  it("keeps the last value on an error, and stops asking an API that is not there", async () => {
    let fail: Error | null = null;
    const feed = new PollingFeed(async () => {
      if (fail) throw fail;
      return 7;
    }, 1_000);
    const seen: FeedUpdate<number>[] = [];
    feed.subscribe((u) => seen.push(u));
    await vi.advanceTimersByTimeAsync(0);
    fail = new Error("boom");
    await vi.advanceTimersByTimeAsync(1_000);
    expect(seen.at(-1)).toEqual({ status: "error", value: 7, detail: "boom" });
    fail = new GraphQLError("not found", true);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(seen.at(-1)).toEqual({ status: "unavailable", detail: "not found" });
    const count = seen.length;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(seen.length).toBe(count);
  });
});

describe("the GraphQL adapter's rows", () => {
  it("maps candles to chart time in seconds", () => {
    const c = candleFromRow({ bucket: "2026-01-02T03:04:00+00:00", open: "1", high: "2", low: "0.5", close: "1.5", volume: "10" });
    expect(c.time).toBe(Date.UTC(2026, 0, 2, 3, 4) / 1000);
    expect(c.close).toBe("1.5");
  });

  it("maps trades with nanosecond times given as strings", () => {
    const t = tradeFromRow("BTC-USD", { tradeId: "9", executedAtNs: "1767323040123456789", price: "1", quantity: "2", takerSide: "sell" });
    expect(t).toEqual({ id: "9", symbol: "BTC-USD", price: "1", quantity: "2", side: "sell", time: 1767323040123 });
  });
});

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

describe("the REST client", () => {
  it("logs in with the password grant and sends the bearer token", async () => {
    const calls: [string, RequestInit][] = [];
    const fetcher = async (url: string | URL | Request, init?: RequestInit) => {
      calls.push([String(url), init ?? {}]);
      if (String(url).endsWith("/auth/token")) return json(200, { access_token: "A1", token_type: "bearer", expires_in: 900, refresh_token: "R1" });
      return json(200, []);
    };
    const client = new RestClient("", memorySessionStore(), fetcher as typeof fetch);
    await client.login("alice", "alice-demo");
    await client.balances("alice-1");
    expect(String(calls[0]![1].body)).toBe("grant_type=password&username=alice&password=alice-demo");
    expect((calls[1]![1].headers as Record<string, string>).Authorization).toBe("Bearer A1");
  });

  it("refreshes an expired token once and retries", async () => {
    const store = memorySessionStore();
    store.save({ access: "old", refresh: "R1" });
    const seen: string[] = [];
    const fetcher = async (url: string | URL | Request, init?: RequestInit) => {
      const auth = (init?.headers as Record<string, string>).Authorization ?? "";
      seen.push(`${String(url)} ${auth || String(init?.body)}`);
      if (String(url).endsWith("/auth/token")) return json(200, { access_token: "new", token_type: "bearer", expires_in: 900, refresh_token: "R2" });
      if (auth === "Bearer old") return json(401, { error: { code: "token_expired", message: "expired" } });
      return json(200, [{ asset: "USD" }]);
    };
    const client = new RestClient("", store, fetcher as typeof fetch);
    expect(await client.balances("alice-1")).toEqual([{ asset: "USD" }]);
    expect(seen).toEqual([
      "/accounts/alice-1/balances Bearer old",
      "/auth/token grant_type=refresh_token&refresh_token=R1",
      "/accounts/alice-1/balances Bearer new",
    ]);
    expect(store.load()).toEqual({ access: "new", refresh: "R2" });
  });

  it("turns refusals into ApiErrors with the server's code, and signs out on a refused login", async () => {
    const store = memorySessionStore();
    store.save({ access: "gone", refresh: null });
    const fetcher = async () => json(401, { error: { code: "token_revoked", message: "revoked" } });
    const client = new RestClient("", store, fetcher as typeof fetch);
    let signedOut = false;
    client.onSignedOut = () => (signedOut = true);
    await expect(client.openOrders("alice-1")).rejects.toMatchObject({ status: 401, code: "token_revoked" });
    expect(signedOut).toBe(true);
    expect(client.signedIn).toBe(false);
    expect(new ApiError(422, "x", "y")).toBeInstanceOf(Error);
  });

  it("reports an unreachable server to the connection indicator", async () => {
    const client = new RestClient("", memorySessionStore(), (async () => {
      throw new TypeError("fetch failed");
    }) as typeof fetch);
    const states: string[] = [];
    client.onReachability = (s) => states.push(s);
    await expect(client.instruments()).rejects.toMatchObject({ code: "network_error" });
    expect(states).toEqual(["unreachable"]);
  });
});

describe("the GraphQL order history", async () => {
  const { historicOrderFromRow } = await import("./graphql");
  it("maps orders with their fills; a market order has no price", () => {
    const o = historicOrderFromRow({
      orderId: "o-1", symbol: "BTC-USD", side: "sell", orderType: "market", price: "0", quantity: "1",
      filledQty: "1", status: "filled", createdAt: "2026-01-01T00:00:00+00:00",
      fills: [{ liquidity: "taker", price: "100", quantity: "1", fee: "0.25", executedAt: "2026-01-01T00:00:01+00:00" }],
    });
    expect(o.price).toBeNull();
    expect(o.side).toBe("sell");
    expect(o.fills[0]).toEqual({ price: "100", quantity: "1", fee: "0.25", liquidity: "taker", time: Date.UTC(2026, 0, 1, 0, 0, 1) });
  });
});

describe("candleSeries rows", () => {
  it("become chart bars by column name", async () => {
    const { candlesFromSeries } = await import("./graphql");
    const bars = candlesFromSeries({
      columns: ["bucket", "open", "high", "low", "close", "volume", "quote_volume", "vwap", "trade_count"],
      rows: [["2026-01-02T03:04:00+00:00", "1", "2", "0.5", "1.5", "10", "15", "1.5", 3]],
    });
    expect(bars).toEqual([{ time: Date.UTC(2026, 0, 2, 3, 4) / 1000, open: "1", high: "2", low: "0.5", close: "1.5", volume: "10" }]);
  });
});
