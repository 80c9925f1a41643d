import { type FormEvent, useState } from "react";
import { ApiError } from "../api/rest";

export function Login(props: { onLogin: (username: string, password: string) => Promise<void> }) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await props.onLogin(username, password);
    } catch (exc) {
      setError(exc instanceof ApiError ? `${exc.message} (${exc.code})` : String(exc));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="login">
      <form onSubmit={submit} data-testid="login-form">
        <h1>Tradecore</h1>
        <label>
          User
          <input name="username" autoComplete="username" value={username} onChange={(e) => setUsername(e.target.value)} />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autoComplete="current-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        </label>
        <button type="submit" disabled={busy || !username || !password}>
          Log in
        </button>
        {error && (
          <p className="error" role="alert" data-testid="login-error">
            {error}
          </p>
        )}
        <p className="muted">Demo users: alice/alice-demo, bob/bob-demo, auditor/auditor-demo, admin/admin-demo.</p>
      </form>
    </main>
  );
}
