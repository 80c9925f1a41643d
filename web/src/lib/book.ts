/**
 * A local copy of one symbol's order book, kept from a snapshot plus sequence-numbered
 * deltas (the WebSocket `book.<SYMBOL>` channel). A delta must carry the next sequence
 * number: an older one is a duplicate and ignored; a newer one means a message was lost,
 * so the book stops applying and asks for a new snapshot instead of drifting.
 * Deltas that arrive before the first snapshot are buffered and replayed on top of it.
 */

import { cmp, type Dec, dec, isZero } from "./decimal";

export type BookSide = "bid" | "ask";

/** [price, quantity] as decimal strings; quantity "0" removes the level. */
export type Level = readonly [price: string, quantity: string];

export interface BookSnapshot {
  seq: number;
  bids: readonly Level[];
  asks: readonly Level[];
}

export interface BookDelta {
  seq: number;
  /** A conflated delta covers `firstSeq`..`seq` (the server merged updates a slow reader missed). */
  firstSeq?: number;
  bids: readonly Level[];
  asks: readonly Level[];
}

export type ApplyResult = "applied" | "buffered" | "duplicate" | "gap";

interface Entry {
  price: Dec;
  priceText: string;
  quantity: string;
}

const MAX_BUFFERED = 10_000;

export class LocalBook {
  private bidLevels = new Map<string, Entry>();
  private askLevels = new Map<string, Entry>();
  private pending: BookDelta[] = [];
  private lastSeq: number | null = null;
  private gapAt: { expected: number; got: number } | null = null;

  /** Sequence number of the last message applied; `null` before the first snapshot. */
  get seq(): number | null {
    return this.lastSeq;
  }

  /** True when the book is in step with the feed (a snapshot, no gap since). */
  get synced(): boolean {
    return this.lastSeq !== null && this.gapAt === null;
  }

  /** The gap that stopped the book, until the next snapshot. */
  get gap(): { expected: number; got: number } | null {
    return this.gapAt;
  }

  applySnapshot(snapshot: BookSnapshot): ApplyResult {
    this.bidLevels = levelsOf(snapshot.bids);
    this.askLevels = levelsOf(snapshot.asks);
    this.lastSeq = snapshot.seq;
    this.gapAt = null;
    const pending = this.pending.filter((d) => d.seq > snapshot.seq).sort((a, b) => a.seq - b.seq);
    this.pending = [];
    for (const delta of pending) {
      if (this.applyDelta(delta) === "gap") return "gap";
    }
    return "applied";
  }

  applyDelta(delta: BookDelta): ApplyResult {
    if (this.lastSeq === null) {
      if (this.pending.length >= MAX_BUFFERED) this.pending.shift();
      this.pending.push(delta);
      return "buffered";
    }
    if (this.gapAt !== null) return "gap";
    if (delta.seq <= this.lastSeq) return "duplicate";
    // Levels carry their new totals, so a conflated delta that overlaps what is applied
    // already is safe to apply again; only a message starting past the next one is a gap.
    const first = delta.firstSeq ?? delta.seq;
    if (first > this.lastSeq + 1) {
      this.gapAt = { expected: this.lastSeq + 1, got: first };
      return "gap";
    }
    update(this.bidLevels, delta.bids);
    update(this.askLevels, delta.asks);
    this.lastSeq = delta.seq;
    return "applied";
  }

  /** Forget everything (e.g. on reconnect, before the new snapshot). */
  reset(): void {
    this.bidLevels.clear();
    this.askLevels.clear();
    this.pending = [];
    this.lastSeq = null;
    this.gapAt = null;
  }

  /** Best first: highest bids, lowest asks. */
  bids(depth = Infinity): Level[] {
    return sorted(this.bidLevels, -1).slice(0, depth);
  }

  asks(depth = Infinity): Level[] {
    return sorted(this.askLevels, 1).slice(0, depth);
  }

  bestBid(): Level | undefined {
    return this.bids(1)[0];
  }

  bestAsk(): Level | undefined {
    return this.asks(1)[0];
  }
}

function levelsOf(levels: readonly Level[]): Map<string, Entry> {
  const out = new Map<string, Entry>();
  update(out, levels);
  return out;
}

function update(book: Map<string, Entry>, levels: readonly Level[]): void {
  for (const [priceText, quantity] of levels) {
    const price = dec(priceText);
    const key = canonical(price);
    if (isZero(dec(quantity))) book.delete(key);
    else book.set(key, { price, priceText, quantity });
  }
}

/** "100.50" and "100.5" are the same level. */
function canonical(price: Dec): string {
  let { units, scale } = price;
  while (scale > 0 && units % 10n === 0n) {
    units /= 10n;
    scale -= 1;
  }
  return `${units}e-${scale}`;
}

function sorted(book: Map<string, Entry>, direction: 1 | -1): Level[] {
  return [...book.values()]
    .sort((a, b) => direction * cmp(a.price, b.price))
    .map((e) => [e.priceText, e.quantity] as const);
}
