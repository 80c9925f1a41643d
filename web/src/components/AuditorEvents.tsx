import { Fragment, useCallback, useEffect, useState } from "react";
import type { RecordedEvent } from "../api/types";
import type { AccountAsOf, AuditDataSource, EventQuery } from "../data/sources";
import { Panel } from "./Panel";

const PAGE = 50;

interface Filters {
  account: string;
  symbol: string;
  types: string;
  since: string;
  until: string;
  toPosition: string;
}

const NO_FILTERS: Filters = { account: "", symbol: "", types: "", since: "", until: "", toPosition: "" };

/** "2026-11-22T13:00" (a datetime-local input, read as UTC) to ISO; "" stays "". */
function utc(local: string): string {
  return local ? `${local.length === 16 ? `${local}:00` : local}Z` : "";
}

export function queryOf(after: number, f: Filters): EventQuery {
  const toPosition = Number.parseInt(f.toPosition, 10);
  return {
    after,
    limit: PAGE,
    account: f.account.trim() || undefined,
    symbol: f.symbol.trim() || undefined,
    types: f.types
      .split(/[\s,]+/)
      .map((t) => t.trim())
      .filter(Boolean),
    since: utc(f.since) || undefined,
    until: utc(f.until) || undefined,
    toPosition: Number.isFinite(toPosition) ? toPosition : undefined,
  };
}

/** The committed log, filtered, a page at a time from a position (auditor and admin). */
export function AuditorEvents({ source }: { source: AuditDataSource }) {
  const [after, setAfter] = useState(0);
  const [draft, setDraft] = useState<Filters>(NO_FILTERS);
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  const [rows, setRows] = useState<RecordedEvent[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [open, setOpen] = useState<number | null>(null);
  const [asOf, setAsOf] = useState<{ account: string; position: number } | null>(null);

  const load = useCallback(async () => {
    setError(null);
    try {
      setRows(await source.events(queryOf(after, filters)));
    } catch (exc) {
      setError(exc instanceof Error ? exc.message : String(exc));
    }
  }, [source, after, filters]);

  useEffect(() => {
    void load();
  }, [load]);

  const field = (name: keyof Filters, label: string, props: Record<string, string> = {}) => (
    <label>
      {label}{" "}
      <input
        value={draft[name]}
        onChange={(e) => setDraft({ ...draft, [name]: e.target.value })}
        data-testid={`events-filter-${name}`}
        {...props}
      />
    </label>
  );
  const apply = (e: React.FormEvent) => {
    e.preventDefault();
    setAfter(0);
    setFilters(draft);
  };
  const actions = (
    <span className="pager">
      <button type="button" disabled={after === 0} onClick={() => setAfter(Math.max(0, after - PAGE))}>
        ‹ Earlier
      </button>
      <label>
        after position{" "}
        <input
          className="short"
          value={after}
          onChange={(e) => setAfter(Math.max(0, Number.parseInt(e.target.value, 10) || 0))}
          data-testid="events-after"
        />
      </label>
      <button
        type="button"
        disabled={rows.length < PAGE}
        onClick={() => setAfter(rows[rows.length - 1]?.position ?? after)}
      >
        Later ›
      </button>
    </span>
  );
  const accountOf = (r: RecordedEvent) => {
    const a = r.event.account_id ?? r.event.taker_account_id;
    return typeof a === "string" ? a : null;
  };
  return (
    <>
      <Panel title="Event history" testId="events" actions={actions} className="wide">
        <form className="filters" onSubmit={apply} data-testid="events-filters">
          {field("account", "account")}
          {field("symbol", "symbol")}
          {field("types", "types", { placeholder: "OrderAccepted, TradeExecuted" })}
          {field("since", "from (UTC)", { type: "datetime-local", step: "1" })}
          {field("until", "to (UTC)", { type: "datetime-local", step: "1" })}
          {field("toPosition", "to position", { className: "short" })}
          <button type="submit" data-testid="events-apply">
            Filter
          </button>
          <button
            type="button"
            onClick={() => {
              setDraft(NO_FILTERS);
              setFilters(NO_FILTERS);
              setAfter(0);
            }}
          >
            Clear
          </button>
        </form>
        {error && (
          <p className="error" data-testid="events-error">
            {error}
          </p>
        )}
        <table>
          <thead>
            <tr>
              <th className="num">Position</th>
              <th>Time (UTC)</th>
              <th>Type</th>
              <th>Stream</th>
              <th>Command</th>
              <th>Hash</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => {
              const account = accountOf(r);
              return (
                <Fragment key={r.position}>
                  <tr
                    className="clickable"
                    onClick={() => setOpen(open === r.position ? null : r.position)}
                    data-testid="event-row"
                    data-type={r.event_type}
                    data-position={r.position}
                  >
                    <td className="num">{r.position}</td>
                    <td>{new Date(Math.floor(r.occurred_at_ns / 1e6)).toISOString()}</td>
                    <td>
                      {r.event_type} v{r.schema_version}
                    </td>
                    <td>
                      {r.stream_id}#{r.stream_version}
                    </td>
                    <td className="muted">{r.command_id}</td>
                    <td className="muted hash">{r.hash.slice(0, 12)}…</td>
                    <td>
                      {account && (
                        <button
                          type="button"
                          onClick={(e) => {
                            e.stopPropagation();
                            setAsOf({ account, position: r.position });
                          }}
                          data-testid="event-as-of"
                          title={`${account} as it was right after position ${r.position}`}
                        >
                          as of
                        </button>
                      )}
                    </td>
                  </tr>
                  {open === r.position && (
                    <tr>
                      <td colSpan={7}>
                        <pre>{JSON.stringify(r.event, null, 2)}</pre>
                      </td>
                    </tr>
                  )}
                </Fragment>
              );
            })}
          </tbody>
        </table>
      </Panel>
      <AccountAsOfPanel source={source} pick={asOf} />
    </>
  );
}

/** An account replayed from the log up to a position or a time: what it held then. */
function AccountAsOfPanel({ source, pick }: { source: AuditDataSource; pick: { account: string; position: number } | null }) {
  const [account, setAccount] = useState("");
  const [at, setAt] = useState("");
  const [state, setState] = useState<AccountAsOf | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const show = useCallback(
    async (who: string, when: string) => {
      setError(null);
      setBusy(true);
      try {
        const position = /^\d+$/.test(when.trim()) ? Number(when.trim()) : null;
        if (position === null && !when.trim()) throw new Error("give a log position or a time (UTC)");
        const time = position === null ? utc(when.trim().replace(" ", "T")) : "";
        setState(await source.accountAsOf(who.trim(), position === null ? { time } : { position }));
      } catch (exc) {
        setState(null);
        setError(exc instanceof Error ? exc.message : String(exc));
      } finally {
        setBusy(false);
      }
    },
    [source],
  );

  useEffect(() => {
    if (pick === null) return;
    setAccount(pick.account);
    setAt(String(pick.position));
    void show(pick.account, String(pick.position));
  }, [pick, show]);

  return (
    <Panel title="Account as of" testId="as-of" className="wide">
      <form
        className="filters"
        onSubmit={(e) => {
          e.preventDefault();
          void show(account, at);
        }}
      >
        <label>
          account <input value={account} onChange={(e) => setAccount(e.target.value)} data-testid="as-of-account" />
        </label>
        <label>
          position or time (UTC){" "}
          <input
            value={at}
            placeholder="1234 or 2026-11-22T13:00:00"
            onChange={(e) => setAt(e.target.value)}
            data-testid="as-of-at"
          />
        </label>
        <button type="submit" disabled={busy || !account.trim()} data-testid="as-of-show">
          Show
        </button>
      </form>
      {error && (
        <p className="error" data-testid="as-of-error">
          {error}
        </p>
      )}
      {state && (
        <div data-testid="as-of-state" data-position={state.position} data-exists={String(state.exists)}>
          <p className="muted">
            {state.account} after log position {state.position}
            {state.exists ? "" : " (not opened yet)"} · {state.replayedEvents} events replayed
          </p>
          <table>
            <thead>
              <tr>
                <th>Asset</th>
                <th className="num">Available</th>
                <th className="num">Reserved</th>
              </tr>
            </thead>
            <tbody>
              {state.balances.map((b) => (
                <tr key={b.asset} data-testid={`as-of-balance-${b.asset}`} data-available={b.available} data-reserved={b.reserved}>
                  <td>{b.asset}</td>
                  <td className="num">{b.available}</td>
                  <td className="num">{b.reserved}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <table>
            <thead>
              <tr>
                <th>Open order</th>
                <th>Symbol</th>
                <th>Side</th>
                <th className="num">Price</th>
                <th className="num">Remaining</th>
              </tr>
            </thead>
            <tbody>
              {state.openOrders.map((o) => (
                <tr key={o.orderId} data-testid="as-of-order">
                  <td className="muted">{o.orderId}</td>
                  <td>{o.symbol}</td>
                  <td>{o.side}</td>
                  <td className="num">{o.price}</td>
                  <td className="num">{o.remaining}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Panel>
  );
}
