import { Fragment, useCallback, useEffect, useState } from "react";
import type { RecordedEvent } from "../api/types";
import type { AuditDataSource } from "../data/sources";
import { Panel } from "./Panel";

const PAGE = 50;

/** The committed log, a page at a time from a position (auditor and admin). */
export function AuditorEvents({ source }: { source: AuditDataSource }) {
  const [after, setAfter] = useState(0);
  const [typeFilter, setTypeFilter] = useState("");
  const [rows, setRows] = useState<RecordedEvent[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [open, setOpen] = useState<number | null>(null);

  const load = useCallback(async () => {
    setError(null);
    try {
      setRows(await source.events(after, PAGE));
    } catch (exc) {
      setError(exc instanceof Error ? exc.message : String(exc));
    }
  }, [source, after]);

  useEffect(() => {
    void load();
  }, [load]);

  const shown = typeFilter ? rows.filter((r) => r.event_type.toLowerCase().includes(typeFilter.toLowerCase())) : rows;
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
      <input placeholder="event type" value={typeFilter} onChange={(e) => setTypeFilter(e.target.value)} />
    </span>
  );
  return (
    <Panel title="Event log" testId="events" actions={actions} className="wide">
      {error && <p className="error">{error}</p>}
      <table>
        <thead>
          <tr>
            <th className="num">Position</th>
            <th>Time (UTC)</th>
            <th>Type</th>
            <th>Stream</th>
            <th>Command</th>
            <th>Hash</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((r) => (
            <Fragment key={r.position}>
              <tr className="clickable" onClick={() => setOpen(open === r.position ? null : r.position)} data-testid="event-row">
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
              </tr>
              {open === r.position && (
                <tr>
                  <td colSpan={6}>
                    <pre>{JSON.stringify(r.event, null, 2)}</pre>
                  </td>
                </tr>
              )}
            </Fragment>
          ))}
        </tbody>
      </table>
    </Panel>
  );
}
