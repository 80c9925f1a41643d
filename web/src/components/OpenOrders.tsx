import { useState } from "react";
import { ApiError } from "../api/rest";
import type { CommandOutcome, Order, OrderAmend } from "../api/types";
import type { FeedUpdate } from "../data/feed";
import { describeReason } from "../lib/reasons";
import { Panel } from "./Panel";

export function OpenOrders(props: {
  update: FeedUpdate<Order[]>;
  onCancel: (order: Order) => Promise<CommandOutcome>;
  onAmend: (order: Order, amend: OrderAmend) => Promise<CommandOutcome>;
}) {
  const { update, onCancel, onAmend } = props;
  const [editing, setEditing] = useState<string | null>(null);
  const [newPrice, setNewPrice] = useState("");
  const [newQuantity, setNewQuantity] = useState("");
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);

  async function run(action: () => Promise<CommandOutcome>, done: string) {
    setMessage(null);
    try {
      const outcome = await action();
      setMessage(
        outcome.outcome === "accepted"
          ? { ok: true, text: done }
          : { ok: false, text: `Rejected: ${describeReason(outcome.reason)}` },
      );
      if (outcome.outcome === "accepted") setEditing(null);
    } catch (exc) {
      setMessage({ ok: false, text: exc instanceof ApiError ? `${exc.message} (${exc.code})` : String(exc) });
    }
  }

  function startEdit(order: Order) {
    setEditing(order.order_id);
    setNewPrice(order.price);
    setNewQuantity(order.remaining_quantity);
  }

  const orders = update.value ?? [];
  return (
    <Panel title={`Open orders (${orders.length})`} testId="open-orders" update={update}>
      {message && (
        <p className={message.ok ? "ok" : "error"} data-testid="open-orders-message">
          {message.text}
        </p>
      )}
      <table>
        <thead>
          <tr>
            <th>Symbol</th>
            <th>Side</th>
            <th className="num">Price</th>
            <th className="num">Remaining</th>
            <th>TIF</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {orders.map((o) => (
            <tr key={o.order_id} data-testid="open-order" data-order-id={o.order_id}>
              <td>{o.symbol}</td>
              <td className={`side-${o.side}`}>{o.side}</td>
              {editing === o.order_id ? (
                <>
                  <td className="num">
                    <input value={newPrice} onChange={(e) => setNewPrice(e.target.value)} data-testid="amend-price" />
                  </td>
                  <td className="num">
                    <input
                      value={newQuantity}
                      onChange={(e) => setNewQuantity(e.target.value)}
                      data-testid="amend-quantity"
                    />
                  </td>
                  <td>{o.time_in_force}</td>
                  <td className="actions">
                    <button
                      type="button"
                      data-testid="amend-save"
                      onClick={() => {
                        const amend: OrderAmend = {};
                        if (newPrice !== o.price) amend.new_price = newPrice;
                        if (newQuantity !== o.remaining_quantity) amend.new_quantity = newQuantity;
                        void run(() => onAmend(o, amend), `Amended ${o.order_id}`);
                      }}
                    >
                      Save
                    </button>
                    <button type="button" onClick={() => setEditing(null)}>
                      Back
                    </button>
                  </td>
                </>
              ) : (
                <>
                  <td className="num">{o.price}</td>
                  <td className="num">{o.remaining_quantity}</td>
                  <td>{o.time_in_force}</td>
                  <td className="actions">
                    <button type="button" onClick={() => startEdit(o)} data-testid="amend">
                      Amend
                    </button>
                    <button
                      type="button"
                      onClick={() => void run(() => onCancel(o), `Canceled ${o.order_id}`)}
                      data-testid="cancel"
                    >
                      Cancel
                    </button>
                  </td>
                </>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </Panel>
  );
}
