import { type FormEvent, useEffect, useState } from "react";
import { ApiError } from "../api/rest";
import type { CommandOutcome, Instrument, OrderCreate, OrderType, Side, TimeInForce } from "../api/types";
import { format, placesOf, dec } from "../lib/decimal";
import { estimateCost } from "../lib/estimate";
import { describeReason } from "../lib/reasons";
import { checkTicket } from "../lib/ticket";
import { Panel } from "./Panel";

export interface TicketPrefill {
  price: string;
  side?: Side;
  /** Changes on every click so the same price can be picked twice. */
  nonce: number;
}

type Result = { kind: "accepted"; text: string } | { kind: "rejected"; text: string };

export function OrderTicket(props: {
  instrument: Instrument | null;
  account: string | null;
  prefill: TicketPrefill | null;
  onPlace: (body: OrderCreate) => Promise<CommandOutcome>;
}) {
  const { instrument, account, prefill, onPlace } = props;
  const [side, setSide] = useState<Side>("buy");
  const [orderType, setOrderType] = useState<OrderType>("limit");
  const [price, setPrice] = useState("");
  const [quantity, setQuantity] = useState("");
  const [timeInForce, setTimeInForce] = useState<TimeInForce>("gtc");
  const [postOnly, setPostOnly] = useState(false);
  const [touched, setTouched] = useState(false);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<Result | null>(null);

  useEffect(() => {
    if (prefill === null) return;
    setOrderType("limit");
    setPrice(prefill.price);
    if (prefill.side) setSide(prefill.side);
  }, [prefill]);

  useEffect(() => setResult(null), [instrument?.symbol]);

  function chooseType(next: OrderType) {
    setOrderType(next);
    if (next === "market") {
      setPostOnly(false);
      if (timeInForce === "gtc") setTimeInForce("ioc");
    }
  }

  if (instrument === null || account === null) {
    return (
      <Panel title="Order ticket" testId="ticket">
        <p className="muted">{account === null ? "This user has no trading account." : "Pick a market."}</p>
      </Panel>
    );
  }

  const input = { side, orderType, price, quantity, timeInForce, postOnly };
  const check = checkTicket(input, instrument);
  const estimate = estimateCost(input, instrument);
  const quotePlaces = placesOf(dec(instrument.tick_size));
  const show = (field: keyof typeof check.errors) =>
    (touched || (field === "price" ? price : field === "quantity" ? quantity : "x") !== "") && check.errors[field] ? (
      <span className="field-error" data-testid={`ticket-error-${field}`}>
        {check.errors[field]}
      </span>
    ) : null;

  async function submit(event: FormEvent) {
    event.preventDefault();
    setTouched(true);
    if (check.body === null) return;
    setBusy(true);
    setResult(null);
    try {
      const outcome = await onPlace(check.body);
      setResult(
        outcome.outcome === "accepted"
          ? { kind: "accepted", text: `Accepted: ${outcome.order_id ?? ""}` }
          : { kind: "rejected", text: `Rejected: ${describeReason(outcome.reason)}` },
      );
    } catch (exc) {
      setResult({
        kind: "rejected",
        text: exc instanceof ApiError ? `Refused: ${exc.message} (${exc.code})` : `Failed: ${String(exc)}`,
      });
    } finally {
      setBusy(false);
    }
  }

  return (
    <Panel title={`Order ticket · ${instrument.symbol}`} testId="ticket">
      <form onSubmit={submit} className="ticket" noValidate>
        <div className="sides">
          {(["buy", "sell"] as const).map((s) => (
            <button
              type="button"
              key={s}
              className={`side side-${s} ${side === s ? "active" : ""}`}
              onClick={() => setSide(s)}
              data-testid={`ticket-side-${s}`}
            >
              {s === "buy" ? "Buy" : "Sell"}
            </button>
          ))}
        </div>
        <label>
          Type
          <select value={orderType} onChange={(e) => chooseType(e.target.value as OrderType)} data-testid="ticket-type">
            <option value="limit">Limit</option>
            <option value="market">Market</option>
          </select>
        </label>
        {orderType === "limit" && (
          <label>
            Price ({instrument.quote}) <small className="muted">tick {instrument.tick_size}</small>
            <input inputMode="decimal" value={price} onChange={(e) => setPrice(e.target.value)} data-testid="ticket-price" />
            {show("price")}
          </label>
        )}
        <label>
          Quantity ({instrument.base}) <small className="muted">lot {instrument.lot_size}</small>
          <input
            inputMode="decimal"
            value={quantity}
            onChange={(e) => setQuantity(e.target.value)}
            data-testid="ticket-quantity"
          />
          {show("quantity")}
        </label>
        <label>
          Time in force
          <select value={timeInForce} onChange={(e) => setTimeInForce(e.target.value as TimeInForce)} data-testid="ticket-tif">
            <option value="gtc">GTC · good till canceled</option>
            <option value="ioc">IOC · immediate or cancel</option>
            <option value="fok">FOK · fill or kill</option>
          </select>
          {show("timeInForce")}
        </label>
        <label className="check">
          <input
            type="checkbox"
            checked={postOnly}
            disabled={orderType === "market"}
            onChange={(e) => setPostOnly(e.target.checked)}
            data-testid="ticket-post-only"
          />
          Post-only (maker only)
          {show("postOnly")}
        </label>
        <dl className="estimate" data-testid="ticket-estimate">
          {estimate ? (
            <>
              <dt>Notional{estimate.approximate ? " ≈" : ""}</dt>
              <dd>
                {format(estimate.notional, quotePlaces)} {instrument.quote}
              </dd>
              <dt>
                Fee ({estimate.liquidity === "maker" ? "maker" : estimate.liquidity === "taker" ? "taker" : "up to"}{" "}
                {estimate.feeBps} bp)
              </dt>
              <dd data-testid="ticket-fee">
                {format(estimate.fee)} {instrument.quote}
              </dd>
              <dt>{side === "buy" ? "Total cost" : "You receive"}</dt>
              <dd data-testid="ticket-total">
                {format(estimate.total)} {instrument.quote}
              </dd>
            </>
          ) : (
            <dd className="muted">Enter {orderType === "limit" ? "a price and " : ""}a quantity for an estimate.</dd>
          )}
        </dl>
        {check.warnings.map((w) => (
          <p className="warning" key={w}>
            {w}
          </p>
        ))}
        <button type="submit" className={`submit side-${side}`} disabled={busy} data-testid="ticket-submit">
          {side === "buy" ? "Buy" : "Sell"} {instrument.base}
        </button>
        {result && (
          <p className={result.kind === "accepted" ? "ok" : "error"} role="status" data-testid="ticket-result">
            {result.text}
          </p>
        )}
      </form>
    </Panel>
  );
}
