import { useState } from "react";
import type { AlertCondition, AlertCreate, AlertOut, CommandOutcome } from "../api/types";
import type { FeedUpdate } from "../data/feed";
import type { Alert, HistoricOrder, Position } from "../data/sources";
import { display } from "../lib/decimal";
import { describeReason } from "../lib/reasons";
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
              <td className="num">{display(p.quantity)}</td>
              <td className="num">{p.averagePrice ? display(p.averagePrice) : "–"}</td>
              <td className="num">{p.realizedPnl ? display(p.realizedPnl) : "–"}</td>
              <td className="num">{p.unrealizedPnl ? display(p.unrealizedPnl) : "–"}</td>
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

export interface AlertActions {
  create: (body: AlertCreate) => Promise<CommandOutcome>;
  cancel: (alert: AlertOut) => Promise<CommandOutcome>;
}

function describeAlert(a: AlertOut): string {
  if (a.condition === "moves_pct") return `moves ${a.pct}% within ${a.window_s} s`;
  return `${a.condition === "crosses_above" ? "crosses above" : "crosses below"} ${a.level}`;
}

/** Price alerts of the account: create (on the selected symbol), list, cancel; and the
 * notifications of those that fired while the page is open. */
export function Alerts(props: {
  update: FeedUpdate<AlertOut[]>;
  notices: FeedUpdate<Alert[]>;
  symbol: string | null;
  actions: AlertActions;
}) {
  const { update, notices, symbol, actions } = props;
  const [condition, setCondition] = useState<AlertCondition>("crosses_above");
  const [level, setLevel] = useState("");
  const [pct, setPct] = useState("");
  const [windowS, setWindowS] = useState("300");
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const [busy, setBusy] = useState(false);

  const run = async (what: string, action: () => Promise<CommandOutcome>) => {
    setBusy(true);
    setMessage(null);
    try {
      const outcome = await action();
      setMessage(
        outcome.outcome === "accepted"
          ? { ok: true, text: what }
          : { ok: false, text: `Refused: ${describeReason(outcome.reason)} (${outcome.reason})` },
      );
    } catch (exc) {
      setMessage({ ok: false, text: `Refused: ${exc instanceof Error ? exc.message : String(exc)}` });
    } finally {
      setBusy(false);
    }
  };
  const submit = (e: React.FormEvent) => {
    e.preventDefault();
    if (symbol === null) return;
    const body: AlertCreate =
      condition === "moves_pct"
        ? { symbol, condition, pct: pct.trim(), window_s: Number.parseInt(windowS, 10) }
        : { symbol, condition, level: level.trim() };
    void run("Alert created", () => actions.create(body));
  };
  const rows = [...(update.value ?? [])].sort((a, b) => b.created_at_ns - a.created_at_ns);
  return (
    <Panel title="Alerts" testId="alerts" update={update}>
      {(notices.value ?? []).map((n) => (
        <p key={n.id} className="notice" role="alert" data-testid="alert-notice">
          <span className="muted">{new Date(n.time).toLocaleTimeString()}</span> {n.message}
        </p>
      ))}
      <form className="filters" onSubmit={submit} data-testid="alert-form">
        <select
          value={condition}
          onChange={(e) => setCondition(e.target.value as AlertCondition)}
          data-testid="alert-condition"
        >
          <option value="crosses_above">crosses above</option>
          <option value="crosses_below">crosses below</option>
          <option value="moves_pct">moves by %</option>
        </select>
        {condition === "moves_pct" ? (
          <>
            <input className="short" placeholder="%" value={pct} onChange={(e) => setPct(e.target.value)} data-testid="alert-pct" />
            <input
              className="short"
              placeholder="window s"
              value={windowS}
              onChange={(e) => setWindowS(e.target.value)}
              data-testid="alert-window"
            />
          </>
        ) : (
          <input placeholder="price" value={level} onChange={(e) => setLevel(e.target.value)} data-testid="alert-level" />
        )}
        <button type="submit" disabled={busy || symbol === null} data-testid="alert-create">
          Alert on {symbol ?? "…"}
        </button>
      </form>
      {message && (
        <p className={message.ok ? "ok" : "error"} data-testid="alert-message">
          {message.text}
        </p>
      )}
      <table>
        <tbody>
          {rows.map((a) => (
            <tr key={a.alert_id} data-testid="alert-row" data-status={a.status} data-symbol={a.symbol}>
              <td>{a.symbol}</td>
              <td>{describeAlert(a)}</td>
              <td className={a.status === "triggered" ? "ok" : "muted"}>{a.status}</td>
              <td>
                {a.status === "active" && (
                  <button
                    type="button"
                    disabled={busy}
                    onClick={() => void run("Alert canceled", () => actions.cancel(a))}
                    data-testid="alert-cancel"
                  >
                    Cancel
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Panel>
  );
}
