import type { Side } from "../api/types";
import type { FeedUpdate } from "../data/feed";
import type { BookView } from "../data/sources";
import { Panel } from "./Panel";

/** Asks above, bids below; clicking a level puts its price in the ticket (on the side that
 * would trade against it). */
export function DepthLadder(props: {
  update: FeedUpdate<BookView>;
  depth?: number;
  onPick: (price: string, side: Side) => void;
}) {
  const { update, onPick, depth = 12 } = props;
  const book = update.value;
  const asks = (book?.asks ?? []).slice(0, depth).reverse();
  const bids = (book?.bids ?? []).slice(0, depth);
  return (
    <Panel title="Order book" testId="depth" update={update}>
      {book && !book.synced && <p className="warning">Resynchronising (sequence gap)…</p>}
      <table className={`ladder ${book && !book.synced ? "stale" : ""}`} data-testid="ladder" data-synced={String(book?.synced ?? false)} data-seq={book?.seq ?? ""}>
        <tbody>
          {asks.map(([price, qty]) => (
            <tr key={`a${price}`} className="clickable ask" onClick={() => onPick(price, "buy")} data-testid="ladder-ask" data-price={price} data-qty={qty}>
              <td className="num">{price}</td>
              <td className="num">{qty}</td>
            </tr>
          ))}
          <tr className="spread">
            <td colSpan={2} />
          </tr>
          {bids.map(([price, qty]) => (
            <tr key={`b${price}`} className="clickable bid" onClick={() => onPick(price, "sell")} data-testid="ladder-bid" data-price={price} data-qty={qty}>
              <td className="num">{price}</td>
              <td className="num">{qty}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Panel>
  );
}
