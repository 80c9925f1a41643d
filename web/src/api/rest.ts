/**
 * The REST client: OAuth2 password log-in with refresh-token rotation, and the trading
 * endpoints of docs/api.md. Every refusal becomes an `ApiError` with the server's code.
 * Tokens live in sessionStorage (per tab, gone when the tab closes).
 */

import type {
  AlertCreate,
  AlertOut,
  Balance,
  CommandOutcome,
  ErrorBody,
  Instrument,
  Me,
  Order,
  OrderAmend,
  OrderCreate,
  RecordedEvent,
  Token,
} from "./types";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> | null = null,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export interface Session {
  access: string;
  refresh: string | null;
}

export interface SessionStore {
  load(): Session | null;
  save(session: Session | null): void;
}

const STORAGE_KEY = "tradecore.session";

export const browserSessionStore: SessionStore = {
  load() {
    const raw = globalThis.sessionStorage?.getItem(STORAGE_KEY);
    return raw ? (JSON.parse(raw) as Session) : null;
  },
  save(session) {
    if (session === null) globalThis.sessionStorage?.removeItem(STORAGE_KEY);
    else globalThis.sessionStorage?.setItem(STORAGE_KEY, JSON.stringify(session));
  },
};

export const memorySessionStore = (): SessionStore => {
  let held: Session | null = null;
  return {
    load: () => held,
    save: (s) => {
      held = s;
    },
  };
};

/** Reachability as the client sees it, for the connection indicator. */
export type Reachability = "ok" | "unreachable" | "unavailable";

type Fetch = typeof fetch;

export class RestClient {
  private session: Session | null;
  private refreshing: Promise<boolean> | null = null;
  /** Called after every request with what it says about the server. */
  onReachability: (state: Reachability, detail?: string) => void = () => {};
  /** Called when the session ends without the user asking (refresh refused). */
  onSignedOut: () => void = () => {};

  constructor(
    private readonly base = "",
    private readonly store: SessionStore = browserSessionStore,
    private readonly fetcher: Fetch = (...args) => fetch(...args),
  ) {
    this.session = store.load();
  }

  get signedIn(): boolean {
    return this.session !== null;
  }

  /** The current access token, for the WebSocket and GraphQL adapters. */
  get accessToken(): string | null {
    return this.session?.access ?? null;
  }

  async login(username: string, password: string): Promise<void> {
    const token = await this.tokenRequest({ grant_type: "password", username, password });
    this.setSession({ access: token.access_token, refresh: token.refresh_token ?? null });
  }

  async logout(): Promise<void> {
    try {
      if (this.session) await this.request("POST", "/auth/logout");
    } catch {
      // Signing out locally matters more than telling the server; the token expires anyway.
    } finally {
      this.setSession(null);
    }
  }

  me(): Promise<Me> {
    return this.request("GET", "/auth/me");
  }

  instruments(): Promise<Instrument[]> {
    return this.request("GET", "/instruments");
  }

  openOrders(account: string): Promise<Order[]> {
    return this.request("GET", `/accounts/${encodeURIComponent(account)}/orders`);
  }

  balances(account: string): Promise<Balance[]> {
    return this.request("GET", `/accounts/${encodeURIComponent(account)}/balances`);
  }

  placeOrder(account: string, body: OrderCreate): Promise<CommandOutcome> {
    return this.request("POST", `/accounts/${encodeURIComponent(account)}/orders`, body);
  }

  cancelOrder(account: string, orderId: string): Promise<CommandOutcome> {
    const path = `/accounts/${encodeURIComponent(account)}/orders/${encodeURIComponent(orderId)}`;
    return this.request("DELETE", path);
  }

  amendOrder(account: string, orderId: string, body: OrderAmend): Promise<CommandOutcome> {
    const path = `/accounts/${encodeURIComponent(account)}/orders/${encodeURIComponent(orderId)}`;
    return this.request("PATCH", path, body);
  }

  alerts(account: string): Promise<AlertOut[]> {
    return this.request("GET", `/accounts/${encodeURIComponent(account)}/alerts`);
  }

  createAlert(account: string, body: AlertCreate): Promise<CommandOutcome> {
    return this.request("POST", `/accounts/${encodeURIComponent(account)}/alerts`, body);
  }

  cancelAlert(account: string, alertId: string): Promise<CommandOutcome> {
    const path = `/accounts/${encodeURIComponent(account)}/alerts/${encodeURIComponent(alertId)}`;
    return this.request("DELETE", path);
  }

  events(after: number, limit: number): Promise<RecordedEvent[]> {
    return this.request("GET", `/events?after=${after}&limit=${limit}`);
  }

  /** A JSON request with the bearer token; one refresh-and-retry on an expired token. */
  async request<T>(method: string, path: string, body?: unknown, retried = false): Promise<T> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (this.session) headers.Authorization = `Bearer ${this.session.access}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["Idempotency-Key"] = newKey();
    const response = await this.send(this.base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401 && !retried && this.session?.refresh) {
      if (await this.refresh()) return this.request(method, path, body, true);
    }
    return this.read<T>(response, response.status === 401);
  }

  private async refresh(): Promise<boolean> {
    // One refresh at a time: refresh tokens are single-use, a second use revokes the login.
    this.refreshing ??= (async () => {
      const refresh = this.session?.refresh;
      if (!refresh) return false;
      try {
        const token = await this.tokenRequest({ grant_type: "refresh_token", refresh_token: refresh });
        this.setSession({ access: token.access_token, refresh: token.refresh_token ?? refresh });
        return true;
      } catch {
        return false;
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  private async tokenRequest(fields: Record<string, string>): Promise<Token> {
    const response = await this.send(this.base + "/auth/token", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: new URLSearchParams(fields).toString(),
    });
    return this.read<Token>(response, false);
  }

  private async send(url: string, init: RequestInit): Promise<Response> {
    try {
      const response = await this.fetcher(url, init);
      if (response.status === 503) this.onReachability("unavailable", "the service is degraded");
      else this.onReachability("ok");
      return response;
    } catch (exc) {
      this.onReachability("unreachable", String(exc));
      throw new ApiError(0, "network_error", "the server cannot be reached");
    }
  }

  private async read<T>(response: Response, signOut: boolean): Promise<T> {
    const text = await response.text();
    let payload: unknown = null;
    try {
      payload = text ? JSON.parse(text) : null;
    } catch {
      payload = null;
    }
    if (response.ok) return payload as T;
    const error = (payload as ErrorBody | null)?.error;
    if (signOut && this.session) {
      this.setSession(null);
      this.onSignedOut();
    }
    throw new ApiError(
      response.status,
      error?.code ?? `http_${response.status}`,
      error?.message ?? (response.statusText || `HTTP ${response.status}`),
      error?.details ?? null,
    );
  }

  private setSession(session: Session | null): void {
    this.session = session;
    this.store.save(session);
  }
}

function newKey(): string {
  return globalThis.crypto?.randomUUID?.() ?? `k-${Date.now()}-${Math.random().toString(36).slice(2)}`;
}
