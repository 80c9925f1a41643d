/**
 * ADAPTER: the WebSocket API (/ws, docs/websocket.md). One connection per signed-in page:
 * `book.<SYMBOL>` (snapshot, then sequence-numbered deltas, conflated for slow readers),
 * `trades.<SYMBOL>`, `candles.<SYMBOL>.<INTERVAL>` and the private `orders.<ACCOUNT>` and
 * `alerts.<ACCOUNT>`. It reconnects with backoff, resubscribes, and asks for a fresh
 * snapshot (`{"op": "snapshot"}`) when a channel's sequence has a gap; panels never reload.
 *
 * Prices and quantities arrive as integers in the instrument's units (ticks, lots): `Units`
 * turns them into decimal strings exactly, with the tick and lot sizes of GET /instruments.
 */

import { Backoff } from "../lib/backoff";
import { type Level, LocalBook } from "../lib/book";
import { type Dec, dec, format, timesInt } from "../lib/decimal";
import type { Feed, FeedStatus, FeedUpdate, Listener } from "./feed";
import type { Alert, BookView, Candle, Trade } from "./sources";

/** A channel message: `{"channel", "seq", "type", "data"}` (+ `first_seq` when conflated). */
export interface ChannelMessage {
  channel: string;
  seq: number;
  first_seq?: number;
  type: string;
  data: Record<string, unknown>;
}

/** What a channel handler sees: its messages, its refusals, and the socket going away. */
export type ChannelEvent =
  | ({ kind: "message" } & ChannelMessage)
  | { kind: "error"; code: string; message: string }
  | { kind: "disconnected" };

type Handler = (event: ChannelEvent) => void;

interface Control {
  type: string;
  id?: string | number;
  code?: string;
  message?: string;
  channel?: string;
}

/** A frame from the server, or `null` for one this client cannot read. */
export function decode(raw: string): ChannelMessage | Control | null {
  try {
    const msg = JSON.parse(raw) as Record<string, unknown>;
    if (typeof msg !== "object" || msg === null || typeof msg.type !== "string") return null;
    return msg as unknown as ChannelMessage | Control;
  } catch {
    return null;
  }
}

function isChannelMessage(msg: ChannelMessage | Control): msg is ChannelMessage {
  return typeof (msg as ChannelMessage).channel === "string" && typeof (msg as ChannelMessage).seq === "number";
}

/** The server closes a socket it has not heard from in 45 s; ping well before. */
export const PING_MS = 15_000;
const SUBSCRIBE_ID = "sub:";

export class LiveConnection {
  private socket: WebSocket | null = null;
  private handlers = new Map<string, Set<Handler>>();
  private backoff = new Backoff();
  private openedAt = 0;
  private closed = true;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private pinger: ReturnType<typeof setInterval> | null = null;

  constructor(
    private readonly url: string,
    private readonly token: () => string | null,
    private readonly onStatus: (status: FeedStatus, detail?: string) => void,
    private readonly makeSocket: (url: string) => WebSocket = (url) => new WebSocket(url),
  ) {}

  start(): void {
    if (!this.closed) return;
    this.closed = false;
    this.connect();
  }

  stop(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.stopPinging();
    this.socket?.close(1000, "page closed");
    this.socket = null;
  }

  subscribe(channel: string, handler: Handler): () => void {
    let set = this.handlers.get(channel);
    if (set === undefined) {
      set = new Set();
      this.handlers.set(channel, set);
      this.send({ op: "subscribe", channel, id: SUBSCRIBE_ID + channel });
    }
    set.add(handler);
    return () => {
      set.delete(handler);
      if (set.size === 0 && this.handlers.get(channel) === set) {
        this.handlers.delete(channel);
        this.send({ op: "unsubscribe", channel });
      }
    };
  }

  /** Ask for a fresh snapshot of a channel (after a sequence gap). */
  resync(channel: string): void {
    this.send({ op: "snapshot", channel, id: SUBSCRIBE_ID + channel });
  }

  private connect(): void {
    const token = this.token();
    const url = token ? `${this.url}?token=${encodeURIComponent(token)}` : this.url;
    this.onStatus("connecting");
    let socket: WebSocket;
    try {
      socket = this.makeSocket(url);
    } catch (exc) {
      this.retry(exc instanceof Error ? exc.message : String(exc));
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      this.openedAt = Date.now();
      this.onStatus("live");
      for (const channel of this.handlers.keys()) {
        this.send({ op: "subscribe", channel, id: SUBSCRIBE_ID + channel });
      }
      this.stopPinging();
      this.pinger = setInterval(() => this.send({ op: "ping" }), PING_MS);
    };
    socket.onmessage = (event) => this.receive(String(event.data));
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.stopPinging();
      for (const set of this.handlers.values()) for (const handler of set) handler({ kind: "disconnected" });
      if (this.closed) return;
      const reason = event.reason ? `closed (${event.code} ${event.reason})` : "disconnected";
      this.retry(reason);
    };
  }

  private retry(reason: string): void {
    this.backoff.closedAfter(this.openedAt ? Date.now() - this.openedAt : 0);
    this.openedAt = 0;
    const delay = this.backoff.next();
    this.onStatus("error", `${reason}; reconnecting in ${Math.ceil(delay / 1000)} s`);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** Route one frame to the handlers of its channel (exported through `receiveForTest`). */
  receive(raw: string): void {
    const msg = decode(raw);
    if (msg === null) return;
    if (isChannelMessage(msg)) {
      for (const handler of this.handlers.get(msg.channel) ?? []) handler({ kind: "message", ...msg });
      return;
    }
    if (msg.type === "error" && typeof msg.id === "string" && msg.id.startsWith(SUBSCRIBE_ID)) {
      const channel = msg.id.slice(SUBSCRIBE_ID.length);
      const failure: ChannelEvent = { kind: "error", code: msg.code ?? "error", message: msg.message ?? "refused" };
      for (const handler of this.handlers.get(channel) ?? []) handler(failure);
    }
  }

  private stopPinging(): void {
    if (this.pinger !== null) clearInterval(this.pinger);
    this.pinger = null;
  }

  private send(frame: object): void {
    if (this.socket?.readyState === 1 /* OPEN */) this.socket.send(JSON.stringify(frame));
  }
}

/** Tick and lot sizes of one instrument: integers on the wire to decimal strings. */
export class Units {
  private readonly tick: Dec;
  private readonly lot: Dec;

  constructor(tickSize: string, lotSize: string) {
    this.tick = dec(tickSize);
    this.lot = dec(lotSize);
  }

  price(ticks: unknown): string {
    return format(timesInt(this.tick, BigInt(ticks as number | string)));
  }

  quantity(lots: unknown): string {
    return format(timesInt(this.lot, BigInt(lots as number | string)));
  }

  levels(rows: unknown): Level[] {
    if (!Array.isArray(rows)) return [];
    return rows.map((row) => {
      const [ticks, lots] = row as [number, number];
      return [this.price(ticks), this.quantity(lots)] as const;
    });
  }
}

/** Resolves an instrument's units (cached; GET /instruments once per symbol). */
export type UnitsOf = (symbol: string) => Promise<Units>;

/** Emit at most once per `ms` (the last value wins): the ladder need not redraw 50×/s. */
function throttled<T>(listener: Listener<T>, ms: number): { push(u: FeedUpdate<T>): void; cancel(): void } {
  let pending: FeedUpdate<T> | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;
  return {
    push(update) {
      pending = update;
      if (timer !== null) return;
      timer = setTimeout(() => {
        timer = null;
        if (pending !== null) listener(pending);
        pending = null;
      }, ms);
    },
    cancel() {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      pending = null;
    },
  };
}

export const BOOK_DEPTH = 20;
export const BOOK_REDRAW_MS = 100;

/** `book.<SYMBOL>` as whole book views, resynchronising from a snapshot on a gap. */
export function bookFeed(live: LiveConnection, unitsOf: UnitsOf, symbol: string): Feed<BookView> {
  const channel = `book.${symbol}`;
  return {
    subscribe(listener: Listener<BookView>) {
      const book = new LocalBook();
      const out = throttled(listener, BOOK_REDRAW_MS);
      const view = (): BookView => ({
        bids: book.bids(BOOK_DEPTH),
        asks: book.asks(BOOK_DEPTH),
        synced: book.synced,
        seq: book.seq,
      });
      let stopped = false;
      let unsubscribe = () => {};
      listener({ status: "connecting" });
      unitsOf(symbol).then(
        (units) => {
          if (stopped) return;
          unsubscribe = live.subscribe(channel, (event) => {
            if (event.kind === "disconnected") {
              book.reset();
              return out.push({ status: "connecting", value: view(), detail: "reconnecting" });
            }
            if (event.kind === "error") return listener({ status: "error", detail: event.message });
            const bids = units.levels(event.data.bids);
            const asks = units.levels(event.data.asks);
            const result =
              event.type === "snapshot"
                ? book.applySnapshot({ seq: event.seq, bids, asks })
                : book.applyDelta({ seq: event.seq, firstSeq: event.first_seq, bids, asks });
            if (result === "gap") {
              live.resync(channel);
              out.push({ status: "error", value: view(), detail: "sequence gap: resynchronising" });
            } else if (result === "applied") {
              // A snapshot is drawn at once (it ends a resync); deltas at most every 100 ms.
              if (event.type === "snapshot") {
                out.cancel();
                listener({ status: "live", value: view() });
              } else out.push({ status: "live", value: view() });
            }
          });
        },
        (exc: unknown) => listener({ status: "error", detail: exc instanceof Error ? exc.message : String(exc) }),
      );
      return () => {
        stopped = true;
        out.cancel();
        unsubscribe();
      };
    },
    refresh() {
      live.resync(channel);
    },
  };
}

export function tradeFromMessage(units: Units, symbol: string, data: Record<string, unknown>): Trade {
  const side = data.taker_side === "buy" || data.taker_side === "sell" ? data.taker_side : null;
  return {
    id: String(data.trade_id),
    symbol,
    price: units.price(data.price_ticks),
    quantity: units.quantity(data.qty_lots),
    side,
    time: Number(BigInt(data.timestamp_ns as number | string) / 1_000_000n),
  };
}

export const TAPE_LENGTH = 50;

/**
 * `trades.<SYMBOL>` pushed onto the tape; the history before it (and after a reconnect, what
 * was missed) comes from `history()` (the GraphQL trades query).
 */
export function tradesFeed(
  live: LiveConnection,
  unitsOf: UnitsOf,
  symbol: string,
  history: () => Promise<Trade[]>,
): Feed<Trade[]> {
  const channel = `trades.${symbol}`;
  return {
    subscribe(listener: Listener<Trade[]>) {
      let tape: Trade[] = [];
      let stopped = false;
      let unsubscribe = () => {};
      const out = throttled(listener, BOOK_REDRAW_MS);
      const merge = (incoming: Trade[]) => {
        const seen = new Set(tape.map((t) => t.id));
        const fresh = incoming.filter((t) => !seen.has(t.id));
        tape = [...fresh, ...tape].sort((a, b) => b.time - a.time || Number(b.id) - Number(a.id)).slice(0, TAPE_LENGTH);
      };
      const reload = () =>
        history().then(
          (trades) => {
            if (stopped) return;
            merge(trades);
            out.push({ status: "live", value: tape });
          },
          (exc: unknown) => listener({ status: "error", value: tape, detail: exc instanceof Error ? exc.message : String(exc) }),
        );
      listener({ status: "connecting" });
      unitsOf(symbol).then(
        (units) => {
          if (stopped) return;
          unsubscribe = live.subscribe(channel, (event) => {
            if (event.kind === "disconnected") return out.push({ status: "connecting", value: tape, detail: "reconnecting" });
            if (event.kind === "error") return listener({ status: "error", value: tape, detail: event.message });
            if (event.type === "snapshot") return void reload(); // (re)subscribed: fill what was missed
            if (event.type !== "trade") return;
            merge([tradeFromMessage(units, symbol, event.data)]);
            out.push({ status: "live", value: tape });
          });
        },
        (exc: unknown) => listener({ status: "error", detail: exc instanceof Error ? exc.message : String(exc) }),
      );
      return () => {
        stopped = true;
        out.cancel();
        unsubscribe();
      };
    },
    refresh() {},
  };
}

export function candleFromMessage(units: Units, data: Record<string, unknown>): Candle {
  return {
    time: Number(BigInt(data.bucket_ns as number | string) / 1_000_000_000n),
    open: units.price(data.open_ticks),
    high: units.price(data.high_ticks),
    low: units.price(data.low_ticks),
    close: units.price(data.close_ticks),
    volume: units.quantity(data.volume_lots),
  };
}

/** Put the live candle in its place: replace the bar with its time, or append a newer one. */
export function withLiveCandle(bars: readonly Candle[], candle: Candle): Candle[] {
  const last = bars.at(-1);
  if (last === undefined || candle.time > last.time) return [...bars, candle];
  const at = bars.findIndex((b) => b.time === candle.time);
  if (at < 0) return [...bars];
  const out = [...bars];
  out[at] = candle;
  return out;
}

/**
 * Candle history from `history` (polled: closed bars come from the read model) with the
 * current bar kept live from `candles.<SYMBOL>.<INTERVAL>`.
 */
export function candlesFeed(
  live: LiveConnection,
  unitsOf: UnitsOf,
  symbol: string,
  interval: string,
  history: Feed<Candle[]>,
): Feed<Candle[]> {
  const channel = `candles.${symbol}.${interval}`;
  return {
    subscribe(listener: Listener<Candle[]>) {
      let bars: Candle[] = [];
      let current: Candle | null = null;
      let status: FeedStatus = "connecting";
      let stopped = false;
      let unsubscribe = () => {};
      const emit = (detail?: string) => listener({ status, value: current ? withLiveCandle(bars, current) : bars, detail });
      const stopHistory = history.subscribe((update) => {
        if (update.value !== undefined) bars = update.value;
        if (status !== "live") status = update.status;
        emit(update.detail);
      });
      unitsOf(symbol).then(
        (units) => {
          if (stopped) return;
          unsubscribe = live.subscribe(channel, (event) => {
            if (event.kind === "disconnected") {
              status = "connecting";
              return;
            }
            if (event.kind === "error") return listener({ status: "error", detail: event.message });
            if (event.data && "bucket_ns" in event.data) current = candleFromMessage(units, event.data);
            status = "live";
            emit();
          });
        },
        () => {},
      );
      return () => {
        stopped = true;
        stopHistory();
        unsubscribe();
      };
    },
    refresh() {
      history.refresh();
    },
  };
}

/**
 * A polled feed that also refreshes at once when `channel` says something changed (an order
 * update on `orders.<ACCOUNT>`): balances and open orders move when the order does.
 */
export function refreshedBy<T>(live: LiveConnection, channel: string, feed: Feed<T>, debounceMs = 150): Feed<T> {
  return {
    subscribe(listener: Listener<T>) {
      let timer: ReturnType<typeof setTimeout> | null = null;
      const stopFeed = feed.subscribe(listener);
      const stopLive = live.subscribe(channel, (event) => {
        if (event.kind !== "message" || event.type === "snapshot" || timer !== null) return;
        timer = setTimeout(() => {
          timer = null;
          feed.refresh();
        }, debounceMs);
      });
      return () => {
        if (timer !== null) clearTimeout(timer);
        stopLive();
        stopFeed();
      };
    },
    refresh() {
      feed.refresh();
    },
  };
}

export const NOTICES_KEPT = 20;

const CONDITION_TEXT: Record<string, string> = {
  crosses_above: "crossed above",
  crosses_below: "crossed below",
  moves_pct: "moved",
};

/** `AlertTriggered` on `alerts.<ACCOUNT>` as a notification for the trader. */
export async function noticeOf(unitsOf: UnitsOf, data: Record<string, unknown>): Promise<Alert> {
  const symbol = String(data.symbol);
  const units = await unitsOf(symbol);
  const condition = CONDITION_TEXT[String(data.condition)] ?? String(data.condition);
  const price = units.price(data.price_ticks);
  const from = units.price(data.reference_price_ticks);
  return {
    id: String(data.alert_id),
    message: `${symbol} ${condition}: traded at ${price} (from ${from})`,
    time: Number(BigInt(data.traded_at_ns as number | string) / 1_000_000n),
  };
}

/** Alerts of `account` that fire while the page is open, newest first. */
export function alertNotices(live: LiveConnection, unitsOf: UnitsOf, account: string): Feed<Alert[]> {
  const channel = `alerts.${account}`;
  return {
    subscribe(listener: Listener<Alert[]>) {
      let notices: Alert[] = [];
      listener({ status: "connecting", value: notices });
      return live.subscribe(channel, (event) => {
        if (event.kind === "disconnected") return listener({ status: "connecting", value: notices });
        if (event.kind === "error") return listener({ status: "error", value: notices, detail: event.message });
        if (event.type !== "AlertTriggered") return listener({ status: "live", value: notices });
        void noticeOf(unitsOf, event.data).then((notice) => {
          notices = [notice, ...notices.filter((n) => n.id !== notice.id)].slice(0, NOTICES_KEPT);
          listener({ status: "live", value: notices });
        });
      });
    },
    refresh() {},
  };
}
