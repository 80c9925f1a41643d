import { useCallback, useEffect, useMemo, useState } from "react";
import { type Reachability, RestClient } from "./api/rest";
import type { AlertCreate, AlertOut, Instrument, Me, Order, OrderAmend, OrderCreate, Side } from "./api/types";
import { CandleChart } from "./components/CandleChart";
import { type ConnectionState, ConnectionIndicator } from "./components/ConnectionIndicator";
import { DepthLadder } from "./components/DepthLadder";
import { Login } from "./components/Login";
import { MarketList } from "./components/MarketList";
import { OpenOrders } from "./components/OpenOrders";
import { OrderTicket, type TicketPrefill } from "./components/OrderTicket";
import { Balances } from "./components/Balances";
import { Alerts, OrderHistory, Positions } from "./components/AccountPanels";
import { TradesTape } from "./components/TradesTape";
import { AuditorEvents } from "./components/AuditorEvents";
import { chooseSources } from "./data";
import type { CandleInterval } from "./data/sources";
import { useFeed } from "./hooks";

export function App({ client }: { client: RestClient }) {
  const [me, setMe] = useState<Me | null>(null);
  const [checking, setChecking] = useState(client.signedIn);
  const [connection, setConnection] = useState<ConnectionState>({ rest: "ok", live: "unavailable" });

  useEffect(() => {
    client.onReachability = (rest: Reachability, restDetail?: string) =>
      setConnection((c) => (c.rest === rest && c.restDetail === restDetail ? c : { ...c, rest, restDetail }));
    client.onSignedOut = () => setMe(null);
    if (client.signedIn) {
      client
        .me()
        .then(setMe)
        .catch(() => setMe(null))
        .finally(() => setChecking(false));
    }
  }, [client]);

  const login = useCallback(
    async (username: string, password: string) => {
      await client.login(username, password);
      setMe(await client.me());
    },
    [client],
  );

  const logout = useCallback(async () => {
    await client.logout();
    setMe(null);
  }, [client]);

  if (checking) return <main className="login">Loading…</main>;
  if (me === null) return <Login onLogin={login} />;
  return <Trading client={client} me={me} connection={connection} setConnection={setConnection} onLogout={logout} />;
}

function Trading(props: {
  client: RestClient;
  me: Me;
  connection: ConnectionState;
  setConnection: (update: (c: ConnectionState) => ConnectionState) => void;
  onLogout: () => Promise<void>;
}) {
  const { client, me, connection, setConnection, onLogout } = props;
  const sources = useMemo(
    () =>
      chooseSources(client, (live, liveDetail) =>
        setConnection((c) => (c.live === live && c.liveDetail === liveDetail ? c : { ...c, live, liveDetail })),
      ),
    [client, setConnection],
  );
  useEffect(() => () => sources.close(), [sources]);

  const [account, setAccount] = useState<string | null>(me.accounts[0] ?? null);
  const [symbol, setSymbol] = useState<string | null>(null);
  const [interval, setInterval] = useState<CandleInterval>("1m");
  const [prefill, setPrefill] = useState<TicketPrefill | null>(null);

  const instruments = useFeed(useMemo(() => sources.market.instruments(), [sources]));
  const stats = useFeed(useMemo(() => sources.market.stats?.() ?? null, [sources]));
  const list = instruments.value ?? [];
  useEffect(() => {
    if (symbol === null && list.length > 0) setSymbol(list[0]!.symbol);
  }, [symbol, list]);
  const instrument: Instrument | null = list.find((i) => i.symbol === symbol) ?? null;

  const loadOlder = useMemo(() => {
    const market = sources.market;
    if (symbol === null || market.olderCandles === undefined) return undefined;
    return (before: number, limit: number) => market.olderCandles!(symbol, interval, before, limit);
  }, [sources, symbol, interval]);
  const candles = useFeed(useMemo(() => (symbol ? sources.market.candles(symbol, interval) : null), [sources, symbol, interval]));
  const book = useFeed(useMemo(() => (symbol ? sources.market.book(symbol) : null), [sources, symbol]));
  const trades = useFeed(useMemo(() => (symbol ? sources.market.trades(symbol) : null), [sources, symbol]));

  const ordersFeed = useMemo(() => (account ? sources.account.openOrders(account) : null), [sources, account]);
  const balancesFeed = useMemo(() => (account ? sources.account.balances(account) : null), [sources, account]);
  const orders = useFeed(ordersFeed);
  const balances = useFeed(balancesFeed);
  const positions = useFeed(useMemo(() => (account ? sources.account.positions(account) : null), [sources, account]));
  const history = useFeed(useMemo(() => (account ? sources.account.orderHistory(account) : null), [sources, account]));
  const alertsFeed = useMemo(() => (account ? sources.account.alerts(account) : null), [sources, account]);
  const alerts = useFeed(alertsFeed);
  const notices = useFeed(useMemo(() => (account ? sources.account.alertNotices(account) : null), [sources, account]));
  const alertActions = useMemo(
    () => ({
      create: async (body: AlertCreate) => {
        if (account === null) throw new Error("no account");
        try {
          return await client.createAlert(account, body);
        } finally {
          alertsFeed?.refresh();
        }
      },
      cancel: async (alert: AlertOut) => {
        try {
          return await client.cancelAlert(alert.account_id, alert.alert_id);
        } finally {
          alertsFeed?.refresh();
        }
      },
    }),
    [client, account, alertsFeed],
  );

  const afterCommand = useCallback(() => {
    ordersFeed?.refresh();
    balancesFeed?.refresh();
  }, [ordersFeed, balancesFeed]);

  const place = useCallback(
    async (body: OrderCreate) => {
      if (account === null) throw new Error("no account");
      try {
        return await client.placeOrder(account, body);
      } finally {
        afterCommand();
      }
    },
    [client, account, afterCommand],
  );
  const cancel = useCallback(
    async (order: Order) => {
      try {
        return await client.cancelOrder(order.account_id, order.order_id);
      } finally {
        afterCommand();
      }
    },
    [client, afterCommand],
  );
  const amend = useCallback(
    async (order: Order, body: OrderAmend) => {
      try {
        return await client.amendOrder(order.account_id, order.order_id, body);
      } finally {
        afterCommand();
      }
    },
    [client, afterCommand],
  );
  const pick = useCallback((price: string, side: Side) => setPrefill({ price, side, nonce: Date.now() }), []);
  const audits = me.role === "auditor" || me.role === "admin";

  return (
    <div className="app">
      <header className="topbar">
        <strong>Tradecore</strong>
        <ConnectionIndicator state={connection} />
        <span className="spacer" />
        {me.accounts.length > 1 ? (
          <select value={account ?? ""} onChange={(e) => setAccount(e.target.value)} data-testid="account">
            {me.accounts.map((a) => (
              <option key={a}>{a}</option>
            ))}
          </select>
        ) : (
          account && <span data-testid="account">{account}</span>
        )}
        <span data-testid="user">
          {me.username} <span className="muted">({me.role})</span>
        </span>
        <button type="button" onClick={() => void onLogout()} data-testid="logout">
          Log out
        </button>
      </header>
      <div className="grid">
        <div className="col-markets">
          <MarketList update={instruments} stats={stats} selected={symbol} onSelect={setSymbol} />
        </div>
        <div className="col-center">
          <CandleChart
            symbol={symbol}
            interval={interval}
            onInterval={setInterval}
            update={candles}
            loadOlder={loadOlder}
          />
          <div className="row">
            <DepthLadder update={book} onPick={pick} />
            <TradesTape update={trades} />
          </div>
        </div>
        <div className="col-ticket">
          <OrderTicket instrument={instrument} account={account} prefill={prefill} onPlace={place} />
        </div>
      </div>
      {account !== null && (
        <div className="grid-bottom">
          <OpenOrders update={orders} onCancel={cancel} onAmend={amend} />
          <Balances update={balances} />
          <Positions update={positions} />
          <OrderHistory update={history} />
          <Alerts update={alerts} notices={notices} symbol={symbol} actions={alertActions} />
        </div>
      )}
      {audits && <AuditorEvents source={sources.audit} />}
    </div>
  );
}
