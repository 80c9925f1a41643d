/**
 * A `Feed` is anything a panel can subscribe to: a REST poller today, a WebSocket channel or
 * a GraphQL subscription tomorrow. Panels see only values and a status, never the transport.
 */

export type FeedStatus = "connecting" | "live" | "polling" | "unavailable" | "error";

export interface FeedUpdate<T> {
  status: FeedStatus;
  value?: T;
  /** Why a feed is unavailable or failing, for the panel to show. */
  detail?: string;
}

export type Listener<T> = (update: FeedUpdate<T>) => void;

export interface Feed<T> {
  subscribe(listener: Listener<T>): () => void;
  /** Fetch now (e.g. right after an order was placed); a no-op for push feeds. */
  refresh(): void;
}

/** Shared poller: one timer however many panels listen; stops with the last listener. */
export class PollingFeed<T> implements Feed<T> {
  private listeners = new Set<Listener<T>>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private last: FeedUpdate<T> = { status: "connecting" };
  private inFlight = false;
  private again = false;

  constructor(
    private readonly load: () => Promise<T>,
    private readonly intervalMs: number,
  ) {}

  subscribe(listener: Listener<T>): () => void {
    this.listeners.add(listener);
    listener(this.last);
    if (this.listeners.size === 1) void this.tick();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0 && this.timer !== null) {
        clearTimeout(this.timer);
        this.timer = null;
      }
    };
  }

  refresh(): void {
    if (this.listeners.size > 0) void this.tick();
  }

  private async tick(): Promise<void> {
    if (this.inFlight) {
      this.again = true;
      return;
    }
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.inFlight = true;
    try {
      this.emit({ status: "polling", value: await this.load() });
    } catch (exc) {
      const detail = exc instanceof Error ? exc.message : String(exc);
      // An API that is not there (yet) is not an error of this panel: say so and stop asking.
      if ((exc as { unavailable?: boolean }).unavailable === true) {
        this.emit({ status: "unavailable", detail });
        this.inFlight = false;
        return;
      }
      this.emit({ ...this.last, status: "error", detail });
    } finally {
      this.inFlight = false;
    }
    if (this.listeners.size === 0) return;
    if (this.again) {
      this.again = false;
      void this.tick();
    } else {
      this.timer = setTimeout(() => void this.tick(), this.intervalMs);
    }
  }

  private emit(update: FeedUpdate<T>): void {
    this.last = update;
    for (const listener of this.listeners) listener(update);
  }
}

/** A panel whose API is not there yet: says so, and why. */
export function unavailable<T>(detail: string): Feed<T> {
  return {
    subscribe(listener) {
      listener({ status: "unavailable", detail });
      return () => {};
    },
    refresh() {},
  };
}

/** Memoise feeds by key so that panels showing the same thing share one poller/channel. */
export class FeedCache {
  private feeds = new Map<string, Feed<unknown>>();

  get<T>(key: string, make: () => Feed<T>): Feed<T> {
    let feed = this.feeds.get(key) as Feed<T> | undefined;
    if (feed === undefined) {
      feed = make();
      this.feeds.set(key, feed as Feed<unknown>);
    }
    return feed;
  }
}
