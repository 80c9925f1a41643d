import type { Instrument } from "../api/types";
import type { FeedUpdate } from "../data/feed";
import type { MarketStat } from "../data/sources";
import { display } from "../lib/decimal";
import { Panel } from "./Panel";

/** "+1.25%" from the 24-hour change and open (for display only). */
export function changePercent(stat: MarketStat | undefined): string {
  if (stat === undefined) return "–";
  const open = Number(stat.open);
  if (!(open > 0)) return "–";
  const pct = (Number(stat.change) / open) * 100;
  return `${pct > 0 ? "+" : ""}${pct.toFixed(2)}%`;
}

export function MarketList(props: {
  update: FeedUpdate<Instrument[]>;
  stats?: FeedUpdate<Record<string, MarketStat>>;
  selected: string | null;
  onSelect: (symbol: string) => void;
}) {
  const { update, selected, onSelect } = props;
  const stats = props.stats?.value ?? {};
  return (
    <Panel title="Markets" testId="markets" update={update}>
      <table>
        <thead>
          <tr>
            <th>Symbol</th>
            <th className="num">Last</th>
            <th className="num">24h</th>
            <th className="num">Volume</th>
            <th>Status</th>
          </tr>
        </thead>
        <tbody>
          {(update.value ?? []).map((inst) => (
            <tr
              key={inst.symbol}
              className={`clickable ${inst.symbol === selected ? "selected" : ""}`}
              onClick={() => onSelect(inst.symbol)}
              data-testid={`market-${inst.symbol}`}
            >
              <td>{inst.symbol}</td>
              <td className="num" data-testid={`last-${inst.symbol}`}>
                {inst.last_price}
              </td>
              <td
                className={`num ${Number(stats[inst.symbol]?.change ?? 0) < 0 ? "down" : "up"}`}
                data-testid={`change-${inst.symbol}`}
              >
                {changePercent(stats[inst.symbol])}
              </td>
              <td className="num" data-testid={`volume-${inst.symbol}`}>
                {stats[inst.symbol] ? display(stats[inst.symbol]!.volume) : "–"}
              </td>
              <td>{inst.status}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Panel>
  );
}
