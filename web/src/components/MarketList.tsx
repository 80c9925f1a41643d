import type { Instrument } from "../api/types";
import type { FeedUpdate } from "../data/feed";
import { Panel } from "./Panel";

export function MarketList(props: {
  update: FeedUpdate<Instrument[]>;
  selected: string | null;
  onSelect: (symbol: string) => void;
}) {
  const { update, selected, onSelect } = props;
  return (
    <Panel title="Markets" testId="markets" update={update}>
      <table>
        <thead>
          <tr>
            <th>Symbol</th>
            <th className="num">Last</th>
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
              <td>{inst.status}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Panel>
  );
}
