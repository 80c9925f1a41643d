import { createChart, type IChartApi, type ISeriesApi, type UTCTimestamp } from "lightweight-charts";
import { useEffect, useRef } from "react";
import type { FeedUpdate } from "../data/feed";
import { CANDLE_INTERVALS, type Candle, type CandleInterval } from "../data/sources";
import { Panel } from "./Panel";

/**
 * Candles with volume underneath (TradingView lightweight-charts). The chart takes numbers:
 * prices are converted for drawing only, never for arithmetic.
 */
export function CandleChart(props: {
  symbol: string | null;
  interval: CandleInterval;
  onInterval: (interval: CandleInterval) => void;
  update: FeedUpdate<Candle[]>;
}) {
  const { symbol, interval, onInterval, update } = props;
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<{ api: IChartApi; candles: ISeriesApi<"Candlestick">; volume: ISeriesApi<"Histogram"> } | null>(
    null,
  );
  const unavailable = update.status === "unavailable";
  // What the canvas shows last, also as attributes (for people's tools and the browser test).
  const last = update.value?.reduce<Candle | undefined>((a, b) => (a === undefined || b.time > a.time ? b : a), undefined);

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
    return () => {
      chart.current = null;
      api.remove();
    };
  }, [unavailable]);

  useEffect(() => {
    const c = chart.current;
    if (c === null || update.value === undefined) return;
    const rows = [...update.value].sort((a, b) => a.time - b.time);
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
  }, [update.value]);

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
        data-bars={update.value?.length ?? 0}
        data-last-time={last?.time ?? ""}
        data-last-close={last?.close ?? ""}
        data-last-volume={last?.volume ?? ""}
      />
    </Panel>
  );
}
