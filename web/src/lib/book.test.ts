import { describe, expect, it } from "vitest";
import { LocalBook } from "./book";

const snapshot = {
  seq: 10,
  bids: [
    ["99.5", "2"],
    ["100", "1"],
  ] as const,
  asks: [
    ["101", "3"],
    ["100.5", "1"],
  ] as const,
};

describe("the local order book", () => {
  it("sorts a snapshot best first", () => {
    const book = new LocalBook();
    expect(book.applySnapshot(snapshot)).toBe("applied");
    expect(book.bids()).toEqual([
      ["100", "1"],
      ["99.5", "2"],
    ]);
    expect(book.asks()).toEqual([
      ["100.5", "1"],
      ["101", "3"],
    ]);
    expect(book.synced).toBe(true);
  });

  it("applies the next delta: changes, adds and removes levels (quantity 0)", () => {
    const book = new LocalBook();
    book.applySnapshot(snapshot);
    expect(book.applyDelta({ seq: 11, bids: [["100.0", "0"], ["99.8", "4"]], asks: [["100.5", "2"]] })).toBe("applied");
    expect(book.bestBid()).toEqual(["99.8", "4"]);
    expect(book.bestAsk()).toEqual(["100.5", "2"]);
    expect(book.seq).toBe(11);
  });

  it("ignores duplicates and old messages", () => {
    const book = new LocalBook();
    book.applySnapshot(snapshot);
    expect(book.applyDelta({ seq: 10, bids: [["100", "0"]], asks: [] })).toBe("duplicate");
    expect(book.bestBid()).toEqual(["100", "1"]);
  });

  it("applies a conflated delta that covers the next sequence number", () => {
    const book = new LocalBook();
    book.applySnapshot(snapshot);
    expect(book.applyDelta({ seq: 14, firstSeq: 11, bids: [["100", "3"]], asks: [] })).toBe("applied");
    expect(book.seq).toBe(14);
    expect(book.bestBid()).toEqual(["100", "3"]);
    expect(book.applyDelta({ seq: 15, bids: [["100", "0"]], asks: [] })).toBe("applied");
    expect(book.applyDelta({ seq: 19, firstSeq: 17, bids: [], asks: [] })).toBe("gap");
  });

  it("stops at a sequence gap until a new snapshot", () => {
    const book = new LocalBook();
    book.applySnapshot(snapshot);
    expect(book.applyDelta({ seq: 12, bids: [["100", "0"]], asks: [] })).toBe("gap");
    expect(book.synced).toBe(false);
    expect(book.gap).toEqual({ expected: 11, got: 12 });
    // Later deltas are not applied on top of a book with a hole in it.
    expect(book.applyDelta({ seq: 13, bids: [["99.5", "0"]], asks: [] })).toBe("gap");
    expect(book.bids()).toHaveLength(2);
    book.applySnapshot({ seq: 13, bids: [["98", "1"]], asks: [] });
    expect(book.synced).toBe(true);
    expect(book.bids()).toEqual([["98", "1"]]);
  });

  it("buffers deltas that arrive before the snapshot and replays the newer ones", () => {
    const book = new LocalBook();
    expect(book.applyDelta({ seq: 10, bids: [["1", "1"]], asks: [] })).toBe("buffered");
    expect(book.applyDelta({ seq: 11, bids: [["100", "5"]], asks: [] })).toBe("buffered");
    expect(book.applySnapshot(snapshot)).toBe("applied");
    expect(book.bestBid()).toEqual(["100", "5"]);
    expect(book.bids().map(([p]) => p)).not.toContain("1");
    expect(book.seq).toBe(11);
  });

  it("reports a gap inside the buffered deltas", () => {
    const book = new LocalBook();
    book.applyDelta({ seq: 12, bids: [], asks: [] });
    expect(book.applySnapshot(snapshot)).toBe("gap");
    expect(book.synced).toBe(false);
  });
});
