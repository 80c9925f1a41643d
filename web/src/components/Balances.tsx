import type { Balance } from "../api/types";
import type { FeedUpdate } from "../data/feed";
import { display } from "../lib/decimal";
import { Panel } from "./Panel";

export function Balances({ update }: { update: FeedUpdate<Balance[]> }) {
  return (
    <Panel title="Balances" testId="balances" update={update}>
      <table>
        <thead>
          <tr>
            <th>Asset</th>
            <th className="num">Available</th>
            <th className="num">Reserved</th>
          </tr>
        </thead>
        <tbody>
          {(update.value ?? []).map((b) => (
            <tr key={b.asset} data-testid={`balance-${b.asset}`}>
              <td>{b.asset}</td>
              <td className="num" data-testid={`available-${b.asset}`}>
                {display(b.available)}
              </td>
              <td className="num" data-testid={`reserved-${b.asset}`}>
                {display(b.reserved)}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Panel>
  );
}
