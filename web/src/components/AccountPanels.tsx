import type { FeedUpdate } from "../data/feed";
import type { Alert, HistoricOrder, Position } from "../data/sources";
import { Panel } from "./Panel";

export function Positions({ update }: { update: FeedUpdate<Position[]> }) {
  return (
    <Panel title="Positions" testId="positions" update={update}>
      <table>
        <thead>
          <tr>
            <th>Symbol</th>
            <th className="num">Quantity</th>
            <th className="num">Avg price</th>
            <th className="num">Realized P&amp;L</th>
            <th className="num">Unrealized P&amp;L</th>
          </tr>
        </thead>
        <tbody>
          {(update.value ?? []).map((p) => (
            <tr key={p.symbol} data-testid={`position-${p.symbol}`} data-qty={p.quantity}>
              <td>{p.symbol}</td>
              <td className="num">{p.quantity}</td>
              <td className="num">{p.averagePrice ?? "–"}</td>
              <td className="num">{p.realizedPnl ?? "–"}</td>
              <td className="num">{p.unrealizedPnl ?? "–"}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Panel>
  );
}

export function OrderHistory({ update }: { update: FeedUpdate<HistoricOrder[]> }) {
  return (
    <Panel title="Order history" testId="order-history" update={update}>
      <table>
        <thead>
          <tr>
            <th>Time</th>
            <th>Symbol</th>
            <th>Side</th>
            <th className="num">Price</th>
            <th className="num">Filled / qty</th>
            <th>Status</th>
            <th>Fills</th>
          </tr>
        </thead>
        <tbody>
          {(update.value ?? []).map((o) => (
            <tr key={o.orderId}>
              <td className="muted">{new Date(o.time).toLocaleString()}</td>
              <td>{o.symbol}</td>
              <td className={`side-${o.side}`}>{o.side}</td>
              <td className="num">{o.price ?? "market"}</td>
              <td className="num">
                {o.filled} / {o.quantity}
              </td>
              <td>{o.status}</td>
              <td>
                {o.fills.map((f, i) => (
                  <div key={i} className="muted">
                    {f.quantity} @ {f.price}
                    {f.fee ? ` fee ${f.fee}` : ""}
                    {f.liquidity ? ` (${f.liquidity})` : ""}
                  </div>
                ))}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Panel>
  );
}

export function Alerts({ update }: { update: FeedUpdate<Alert[]> }) {
  return (
    <Panel title="Alerts" testId="alerts" update={update}>
      <ul className="alerts">
        {(update.value ?? []).map((a) => (
          <li key={a.id}>
            <span className="muted">{new Date(a.time).toLocaleTimeString()}</span> {a.message}
          </li>
        ))}
      </ul>
    </Panel>
  );
}
