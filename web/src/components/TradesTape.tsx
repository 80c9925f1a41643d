import type { FeedUpdate } from "../data/feed";
import type { Trade } from "../data/sources";
import { Panel } from "./Panel";

export function TradesTape({ update }: { update: FeedUpdate<Trade[]> }) {
  return (
    <Panel title="Trades" testId="trades" update={update}>
      <table>
        <tbody>
          {(update.value ?? []).slice(0, 40).map((t) => (
            <tr key={t.id} className={t.side ? `side-${t.side}` : ""} data-testid="tape-row" data-price={t.price} data-qty={t.quantity}>
              <td className="num">{t.price}</td>
              <td className="num">{t.quantity}</td>
              <td className="muted">{new Date(t.time).toLocaleTimeString()}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Panel>
  );
}
