/**
 * ADAPTER (not wired yet): the WebSocket API (/ws) — channels `trades.<SYMBOL>`,
 * `book.<SYMBOL>` (snapshot + sequence-numbered deltas), `candles.<SYMBOL>.<INTERVAL>`,
 * `ticker.<SYMBOL>` and the private `orders`. docs/websocket.md did not exist when this
 * was written, so the message shapes below are provisional; `decode` is the one place to
 * adapt. The connection logic (reconnect with backoff, resubscribe, book resync on a
 * sequence gap) is real and uses the tested modules lib/backoff.ts and lib/book.ts.
 *
 * To wire it: in data/index.ts, build a `LiveConnection`, and have `market.book` /
 * `market.trades` / `market.candles` return `liveFeed(...)` feeds instead of the GraphQL
 * polling ones; pass its status to the connection indicator.
 */

import { Backoff } from "../lib/backoff";
import { type BookDelta, type BookSnapshot, LocalBook } from "../lib/book";
import type { Feed, FeedStatus, FeedUpdate, Listener } from "./feed";
import type { BookView } from "./sources";

/** Provisional frames: {type: "subscribe"|"unsubscribe", channel} out; these in. */
export type Inbound =
  | { type: "snapshot"; channel: string; seq: number; data: unknown }
  | { type: "update"; channel: string; seq: number; data: unknown }
  | { type: "error"; channel?: string; message: string };

export function decode(raw: string): Inbound | null {
  try {
    const msg = JSON.parse(raw) as Partial<Inbound>;
    return typeof msg.type === "string" ? (msg as Inbound) : null;
  } catch {
    return null;
  }
}

type Handler = (msg: Inbound) => void;

export class LiveConnection {
  private socket: WebSocket | null = null;
  private handlers = new Map<string, Set<Handler>>();
  private backoff = new Backoff();
  private openedAt = 0;
  private closed = false;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly url: string,
    private readonly token: () => string | null,
    private readonly onStatus: (status: FeedStatus, detail?: string) => void,
  ) {}

  start(): void {
    this.closed = false;
    this.connect();
  }

  stop(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.socket?.close();
  }

  subscribe(channel: string, handler: Handler): () => void {
    let set = this.handlers.get(channel);
    if (set === undefined) {
      set = new Set();
      this.handlers.set(channel, set);
      this.send({ type: "subscribe", channel });
    }
    set.add(handler);
    return () => {
      set.delete(handler);
      if (set.size === 0) {
        this.handlers.delete(channel);
        this.send({ type: "unsubscribe", channel });
      }
    };
  }

  /** Ask for a fresh snapshot of a channel (after a sequence gap). */
  resync(channel: string): void {
    this.send({ type: "unsubscribe", channel });
    this.send({ type: "subscribe", channel });
  }

  private connect(): void {
    const token = this.token();
    const url = token ? `${this.url}?token=${encodeURIComponent(token)}` : this.url;
    this.onStatus("connecting");
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.onopen = () => {
      this.openedAt = Date.now();
      this.onStatus("live");
      for (const channel of this.handlers.keys()) this.send({ type: "subscribe", channel });
    };
    socket.onmessage = (event) => {
      const msg = decode(String(event.data));
      if (msg === null) return;
      const channel = "channel" in msg ? msg.channel : undefined;
      for (const handler of (channel && this.handlers.get(channel)) || []) handler(msg);
    };
    socket.onclose = () => {
      this.socket = null;
      if (this.closed) return;
      this.backoff.closedAfter(this.openedAt ? Date.now() - this.openedAt : 0);
      this.openedAt = 0;
      const delay = this.backoff.next();
      this.onStatus("error", `disconnected; retrying in ${Math.ceil(delay / 1000)} s`);
      this.timer = setTimeout(() => this.connect(), delay);
    };
  }

  private send(frame: object): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(frame));
  }
}

/** `book.<SYMBOL>` as a feed of whole book views, resynchronising on a sequence gap. */
export function bookFeed(live: LiveConnection, symbol: string): Feed<BookView> {
  const channel = `book.${symbol}`;
  return {
    subscribe(listener: Listener<BookView>) {
      const book = new LocalBook();
      const emit = (status: FeedStatus, detail?: string) => {
        const update: FeedUpdate<BookView> = {
          status,
          detail,
          value: { bids: book.bids(50), asks: book.asks(50), synced: book.synced, seq: book.seq },
        };
        listener(update);
      };
      return live.subscribe(channel, (msg) => {
        if (msg.type === "error") return emit("error", msg.message);
        const result =
          msg.type === "snapshot"
            ? book.applySnapshot({ ...(msg.data as Omit<BookSnapshot, "seq">), seq: msg.seq })
            : book.applyDelta({ ...(msg.data as Omit<BookDelta, "seq">), seq: msg.seq });
        if (result === "gap") {
          live.resync(channel);
          emit("error", `sequence gap at ${book.gap?.expected ?? "?"}: resynchronising`);
        } else if (result === "applied") emit("live");
      });
    },
    refresh() {
      live.resync(channel);
    },
  };
}
