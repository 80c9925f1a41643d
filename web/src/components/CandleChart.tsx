import { createChart, type IChartApi, type ISeriesApi, type UTCTimestamp } from "lightweight-charts";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import type { FeedUpdate } from "../data/feed";
import { CANDLE_INTERVALS, type Candle, type CandleInterval } from "../data/sources";
import { Panel } from "./Panel";

/**
 * Candles with volume underneath (TradingView lightweight-charts). The chart takes numbers:
 * prices are converted for drawing only, never for arithmetic.
 */
/** Bars fetched per scroll-back step. */
export const OLDER_PAGE = 300;

/** Older bars and the live feed's bars as one series: by time, the feed's bar wins. */
export function mergeBars(older: readonly Candle[], recent: readonly Candle[]): Candle[] {
  const byTime = new Map<number, Candle>();
  for (const bar of older) byTime.set(bar.time, bar);
  for (const bar of recent) byTime.set(bar.time, bar);
  return [...byTime.values()].sort((a, b) => a.time - b.time);
}

export function CandleChart(props: {
  symbol: string | null;
  interval: CandleInterval;
  onInterval: (interval: CandleInterval) => void;
  update: FeedUpdate<Candle[]>;
  /** Bars before a time (seconds), for scrolling back; without it the chart shows the feed. */
  loadOlder?: (before: number, limit: number) => Promise<Candle[]>;
}) {
  const { symbol, interval, onInterval, update, loadOlder } = props;
  // History loaded by scrolling back, per symbol and interval; `done` once the start is reached.
  const [older, setOlder] = useState<{ key: string; bars: Candle[]; done: boolean }>({ key: "", bars: [], done: false });
  const key = `${symbol}:${interval}`;
  const olderBars = useMemo(() => (older.key === key ? older.bars : []), [older, key]);
  const bars = useMemo(() => mergeBars(olderBars, update.value ?? []), [olderBars, update.value]);
  const last = bars.at(-1);
  const loading = useRef(false);
  const first = bars[0]?.time;
  const more = useCallback(() => {
    if (loadOlder === undefined || first === undefined || loading.current) return;
    if (older.key === key && older.done) return;
    loading.current = true;
    loadOlder(first, OLDER_PAGE)
      .then((got) =>
        setOlder((prev) => ({
          key,
          bars: mergeBars(prev.key === key ? prev.bars : [], got),
          done: got.length < OLDER_PAGE,
        })),
      )
      .catch(() => {})
      .finally(() => {
        loading.current = false;
      });
  }, [loadOlder, first, key, older]);
  const moreRef = useRef(more);
  moreRef.current = more;
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<{ api: IChartApi; candles: ISeriesApi<"Candlestick">; volume: ISeriesApi<"Histogram"> } | null>(
    null,
  );
  const unavailable = update.status === "unavailable";
  // What the canvas shows last, also as attributes (for people's tools and the browser test).

  useEffect(() => {
    if (box.current === null || unavailable) return undefined;
    const api = createChart(box.current, {
      autoSize: true,
      layout: { background: { color: "#10151c" }, textColor: "#c7d0db" },
      grid: { vertLines: { color: "#1c2530" }, horzLines: { color: "#1c2530" } },
      timeScale: { timeVisible: true, secondsVisible: false },
    });
    const candles = api.addCandlestickSeries({ priceScaleId: "right" });
    const volume = api.addHistogramSeries({ priceScaleId: "volume", priceFormat: { type: "volume" } });
    api.priceScale("volume").applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    api.priceScale("right").applyOptions({ scaleMargins: { top: 0.05, bottom: 0.25 } });
    chart.current = { api, candles, volume };
    // Scrolled (or zoomed) to the first bars: fetch the ones before them.
    api.timeScale().subscribeVisibleLogicalRangeChange((range) => {
      if (range !== null && range.from < 10) moreRef.current();
    });
    return () => {
      chart.current = null;
      api.remove();
    };
  }, [unavailable]);

  useEffect(() => {
    const c = chart.current;
    if (c === null || update.value === undefined) return;
    const rows = bars;
    c.candles.setData(
      rows.map((k) => ({
        time: k.time as UTCTimestamp,
        open: Number(k.open),
        high: Number(k.high),
        low: Number(k.low),
        close: Number(k.close),
      })),
    );
    c.volume.setData(
      rows.map((k) => ({
        time: k.time as UTCTimestamp,
        value: Number(k.volume),
        color: Number(k.close) >= Number(k.open) ? "#26a69a88" : "#ef535088",
      })),
    );
  }, [bars, update.value]);

  const actions = (
    <span className="intervals">
      {CANDLE_INTERVALS.map((i) => (
        <button
          type="button"
          key={i}
          className={i === interval ? "active" : ""}
          onClick={() => onInterval(i)}
          data-testid={`interval-${i}`}
        >
          {i}
        </button>
      ))}
    </span>
  );
  return (
    <Panel title={`Chart · ${symbol ?? ""}`} testId="chart" update={update} actions={actions} className="chart-panel">
      <div
        ref={box}
        className="chart"
        data-testid="chart-canvas"
        data-bars={bars.length}
        data-first-time={bars[0]?.time ?? ""}
        data-last-time={last?.time ?? ""}
        data-last-close={last?.close ?? ""}
        data-last-volume={last?.volume ?? ""}
      />
    </Panel>
  );
}
