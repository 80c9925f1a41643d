import type { ReactNode } from "react";
import type { FeedUpdate } from "../data/feed";

/** A titled box that says where its data stands (live, polling, unavailable and why). */
export function Panel(props: {
  title: string;
  testId: string;
  update?: FeedUpdate<unknown>;
  actions?: ReactNode;
  children?: ReactNode;
  className?: string;
}) {
  const { title, testId, update, actions, children, className } = props;
  return (
    <section className={`panel ${className ?? ""}`} data-testid={testId}>
      <header>
        <h2>{title}</h2>
        {update && <span className={`feed feed-${update.status}`}>{update.status}</span>}
        {actions}
      </header>
      {update?.status === "unavailable" ? (
        <p className="muted" data-testid={`${testId}-unavailable`}>
          Not available yet: {update.detail}
        </p>
      ) : (
        <>
          {update?.status === "error" && <p className="error">{update.detail}</p>}
          {children}
        </>
      )}
    </section>
  );
}
