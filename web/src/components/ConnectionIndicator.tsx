import type { Reachability } from "../api/rest";
import type { FeedStatus } from "../data/feed";

export interface ConnectionState {
  rest: Reachability;
  restDetail?: string;
  /** The live (WebSocket) connection; `unavailable` until that adapter is wired. */
  live: FeedStatus;
  liveDetail?: string;
}

/** Green when the API answers (and the live feed is up), amber when degraded, red when down. */
export function ConnectionIndicator({ state }: { state: ConnectionState }) {
  const level =
    state.rest === "unreachable"
      ? "down"
      : state.rest === "unavailable" || state.live === "error" || state.live === "connecting"
        ? "degraded"
        : "up";
  const live =
    state.live === "live" ? "live data" : state.live === "unavailable" ? "polling" : `live: ${state.live}`;
  const title = [
    `API: ${state.rest}${state.restDetail ? ` (${state.restDetail})` : ""}`,
    `live: ${state.live}${state.liveDetail ? ` (${state.liveDetail})` : ""}`,
  ].join("; ");
  return (
    <span className={`connection connection-${level}`} data-testid="connection" data-state={level} title={title}>
      <span className="dot" /> {level === "down" ? "offline" : level === "degraded" ? "degraded" : "connected"} · {live}
    </span>
  );
}
