import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Feed, FeedUpdate } from "./feed";
import type { BookView, Candle, Trade } from "./sources";
import {
  alertNotices,
  bookFeed,
  candlesFeed,
  LiveConnection,
  PING_MS,
  refreshedBy,
  tradesFeed,
  Units,
  withLiveCandle,
} from "./ws";
import type { Alert } from "./sources";

/** Just enough of a browser WebSocket to drive LiveConnection. */
class FakeSocket {
  static made: FakeSocket[] = [];
  readyState = 0;
  sent: Record<string, unknown>[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((e: { data: string }) => void) | null = null;
  onclose: ((e: { code: number; reason: string }) => void) | null = null;

  constructor(readonly url: string) {
    FakeSocket.made.push(this);
  }

  send(text: string) {
    this.sent.push(JSON.parse(text) as Record<string, unknown>);
  }

  close() {
    this.readyState = 3;
  }

  open() {
    this.readyState = 1;
    this.onopen?.();
  }

  push(frame: object) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  drop(code = 1006, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  ops(op: string) {
    return this.sent.filter((f) => f.op === op);
  }
}

const units = new Units("0.01", "0.001");
const unitsOf = async () => units;
const statuses: string[] = [];

function connection() {
  const live = new LiveConnection(
    "ws://test/ws",
    () => "tok en",
    (s) => statuses.push(s),
    (url) => new FakeSocket(url) as unknown as WebSocket,
  );
  live.start();
  return { live, socket: () => FakeSocket.made.at(-1)! };
}

beforeEach(() => {
  FakeSocket.made = [];
  statuses.length = 0;
  vi.useFakeTimers();
});
afterEach(() => vi.useRealTimers());

describe("the WebSocket connection", () => {
  it("sends the token, subscribes when open, pings, and resubscribes after a reconnect", async () => {
    const { live, socket } = connection();
    expect(socket().url).toBe("ws://test/ws?token=tok%20en");
    const seen: string[] = [];
    live.subscribe("trades.BTC-USD", (e) => seen.push(e.kind === "message" ? e.type : e.kind));
    expect(socket().sent).toEqual([]); // not open yet: nothing is lost, it is sent on open
    socket().open();
    expect(socket().ops("subscribe").map((f) => f.channel)).toEqual(["trades.BTC-USD"]);
    await vi.advanceTimersByTimeAsync(PING_MS);
    expect(socket().ops("ping")).toHaveLength(1);
    socket().push({ channel: "trades.BTC-USD", seq: 1, type: "snapshot", data: {} });
    socket().push({ channel: "other", seq: 1, type: "snapshot", data: {} });
    socket().drop();
    expect(seen).toEqual(["snapshot", "disconnected"]);
    expect(statuses.at(-1)).toBe("error");
    await vi.advanceTimersByTimeAsync(30_000);
    expect(FakeSocket.made).toHaveLength(2);
    socket().open();
    expect(socket().ops("subscribe").map((f) => f.channel)).toEqual(["trades.BTC-USD"]);
    expect(statuses.at(-1)).toBe("live");
    live.stop();
  });

  it("routes a refused subscription to its channel and unsubscribes with the last listener", () => {
    const { live, socket } = connection();
    socket().open();
    const errors: string[] = [];
    const stop = live.subscribe("book.NOPE", (e) => e.kind === "error" && errors.push(e.code));
    socket().push({ type: "error", id: "sub:book.NOPE", code: "unknown_symbol", message: "NOPE is not listed" });
    expect(errors).toEqual(["unknown_symbol"]);
    stop();
    expect(socket().ops("unsubscribe").map((f) => f.channel)).toEqual(["book.NOPE"]);
  });
});

describe("the book channel", () => {
  it("builds the ladder from a snapshot and deltas in ticks and lots, and resyncs on a gap", async () => {
    const { live, socket } = connection();
    socket().open();
    const seen: FeedUpdate<BookView>[] = [];
    bookFeed(live, unitsOf, "BTC-USD").subscribe((u) => seen.push(u));
    await vi.advanceTimersByTimeAsync(0);
    socket().push({
      channel: "book.BTC-USD", seq: 5, type: "snapshot",
      data: { bids: [[3000000, 1500, 2]], asks: [[3000100, 250, 1]] },
    }); // prettier-ignore
    expect(seen.at(-1)!.value).toMatchObject({ bids: [["30000", "1.5"]], asks: [["30001", "0.25"]], synced: true });
    socket().push({ channel: "book.BTC-USD", seq: 6, type: "delta", data: { bids: [[3000000, 0, 0]], asks: [] } });
    socket().push({ channel: "book.BTC-USD", seq: 9, first_seq: 7, type: "delta", data: { bids: [[2999950, 10, 1]], asks: [] } });
    await vi.advanceTimersByTimeAsync(200);
    expect(seen.at(-1)!.value).toMatchObject({ bids: [["29999.5", "0.01"]], seq: 9, synced: true });
    socket().push({ channel: "book.BTC-USD", seq: 11, type: "delta", data: { bids: [], asks: [] } });
    await vi.advanceTimersByTimeAsync(200);
    expect(seen.at(-1)!.status).toBe("error");
    expect(seen.at(-1)!.value!.synced).toBe(false);
    expect(socket().ops("snapshot").map((f) => f.channel)).toEqual(["book.BTC-USD"]);
    socket().push({ channel: "book.BTC-USD", seq: 11, type: "snapshot", data: { bids: [], asks: [[3000200, 1, 1]] } });
    expect(seen.at(-1)).toMatchObject({ status: "live", value: { asks: [["30002", "0.001"]], synced: true } });
  });
});

describe("the trades channel", () => {
  it("loads the history, then puts live trades on top without duplicates", async () => {
    const { live, socket } = connection();
    socket().open();
    const old: Trade = { id: "1", symbol: "BTC-USD", price: "1", quantity: "1", side: "buy", time: 1_000 };
    const seen: FeedUpdate<Trade[]>[] = [];
    tradesFeed(live, unitsOf, "BTC-USD", async () => [old]).subscribe((u) => seen.push(u));
    await vi.advanceTimersByTimeAsync(0);
    socket().push({ channel: "trades.BTC-USD", seq: 1, type: "snapshot", data: { last: null } });
    const trade = { trade_id: 2, price_ticks: 150, qty_lots: 2000, taker_side: "sell", timestamp_ns: 2_000_000_000 };
    socket().push({ channel: "trades.BTC-USD", seq: 2, type: "trade", data: trade });
    socket().push({ channel: "trades.BTC-USD", seq: 3, type: "trade", data: trade });
    await vi.advanceTimersByTimeAsync(200);
    expect(seen.at(-1)!.value).toEqual([
      { id: "2", symbol: "BTC-USD", price: "1.5", quantity: "2", side: "sell", time: 2_000 },
      old,
    ]);
  });
});

describe("the live candle", () => {
  const bar = (time: number, close: string): Candle => ({ time, open: "1", high: "2", low: "1", close, volume: "1" });

  it("replaces the bar of its time or appends a newer one", () => {
    expect(withLiveCandle([bar(60, "1"), bar(120, "1")], bar(120, "3")).map((c) => c.close)).toEqual(["1", "3"]);
    expect(withLiveCandle([bar(60, "1")], bar(120, "3")).map((c) => c.time)).toEqual([60, 120]);
  });

  it("merges the channel's candle into the polled history", async () => {
    const { live, socket } = connection();
    socket().open();
    let listener: ((u: FeedUpdate<Candle[]>) => void) | null = null;
    const history: Feed<Candle[]> = {
      subscribe(l) {
        listener = l;
        return () => {};
      },
      refresh() {},
    };
    const seen: FeedUpdate<Candle[]>[] = [];
    candlesFeed(live, unitsOf, "BTC-USD", "1m", history).subscribe((u) => seen.push(u));
    listener!({ status: "polling", value: [bar(60, "1")] });
    await vi.advanceTimersByTimeAsync(0);
    socket().push({
      channel: "candles.BTC-USD.1m", seq: 1, type: "candle",
      data: { bucket_ns: 120_000_000_000, open_ticks: 100, high_ticks: 300, low_ticks: 100, close_ticks: 250, volume_lots: 5 },
    }); // prettier-ignore
    expect(seen.at(-1)).toMatchObject({ status: "live" });
    expect(seen.at(-1)!.value!.map((c) => [c.time, c.close, c.volume])).toEqual([
      [60, "1", "1"],
      [120, "2.5", "0.005"],
    ]);
  });
});

describe("order updates", () => {
  it("refresh the account's polled panels at once", async () => {
    const { live, socket } = connection();
    socket().open();
    let refreshed = 0;
    const polled: Feed<number> = { subscribe: () => () => {}, refresh: () => void refreshed++ };
    refreshedBy(live, "orders.alice-1", polled).subscribe(() => {});
    socket().push({ channel: "orders.alice-1", seq: 1, type: "snapshot", data: { orders: [] } });
    socket().push({ channel: "orders.alice-1", seq: 2, type: "OrderAccepted", data: {} });
    socket().push({ channel: "orders.alice-1", seq: 3, type: "OrderRested", data: {} });
    await vi.advanceTimersByTimeAsync(500);
    expect(refreshed).toBe(1);
  });
});

describe("alert notifications", () => {
  it("turn AlertTriggered on the account's channel into a message, newest first", async () => {
    const { live, socket } = connection();
    socket().open();
    const seen: FeedUpdate<Alert[]>[] = [];
    alertNotices(live, unitsOf, "alice-1").subscribe((u) => seen.push(u));
    socket().push({ channel: "alerts.alice-1", seq: 1, type: "snapshot", data: { alerts: [] } });
    socket().push({ channel: "alerts.alice-1", seq: 2, type: "AlertCreated", data: {} });
    socket().push({
      channel: "alerts.alice-1", seq: 3, type: "AlertTriggered",
      data: { alert_id: "a1", symbol: "BTC-USD", condition: "crosses_below", price_ticks: 2999000,
              reference_price_ticks: 3000000, traded_at_ns: "1767323040123456789" },
    }); // prettier-ignore
    await vi.advanceTimersByTimeAsync(0);
    expect(seen.at(-1)!.value).toEqual([
      { id: "a1", message: "BTC-USD crossed below: traded at 29990 (from 30000)", time: 1767323040123 },
    ]);
  });
});
