// Subscribe with the npm graphql-ws client (over the ws package) and print each result as
// one JSON line. Usage: node subscribe.mjs <ws-url> <token> <query> <count>
// Exit 0 after <count> results, 2 when the server closes the socket, 3 on a timeout.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [url, token, query, count] = process.argv.slice(2);
const wanted = Number(count || 1);
const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: `Bearer ${token}` },
  retryAttempts: 0,
  lazy: false,
  onNonLazyError: (err) => {
    console.log(JSON.stringify({ closed: err?.code ?? null, reason: err?.reason ?? String(err) }));
    process.exit(2);
  },
});
const timer = setTimeout(() => {
  console.log(JSON.stringify({ timeout: true }));
  process.exit(3);
}, 60000);

let seen = 0;
client.subscribe(
  { query },
  {
    next: (result) => {
      console.log(JSON.stringify(result));
      seen += 1;
      if (seen >= wanted) {
        clearTimeout(timer);
        client.dispose();
        process.exit(0);
      }
    },
    error: (err) => {
      const closed = err && typeof err.code === 'number';
      console.log(JSON.stringify(closed ? { closed: err.code, reason: err.reason } : { errors: err }));
      process.exit(closed ? 2 : 4);
    },
    complete: () => {},
  },
);
