// Browser end-to-end run of the trading UI, driven by tests/e2e/test_web_trading.py (which
// starts `tradecore up` and checks the money with Decimal). Debian's chromium through
// playwright-core; a test tool's own browser download does not work here.
//
// In:  BASE_URL, SYMBOL, PRICE, QTY (an order that rests on a quiet book), FAR_PRICE (outside
//      the price band), BAD_PRICE (off the tick), ARTIFACTS (screenshot directory),
//      CHROMIUM (default /usr/bin/chromium).
// Out: one JSON line on stdout: the balances each screen showed at each step.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const BASE_URL = env("BASE_URL");
const SYMBOL = env("SYMBOL");
const PRICE = env("PRICE");
const QTY = env("QTY");
const FAR_PRICE = env("FAR_PRICE");
const BAD_PRICE = env("BAD_PRICE");
const ARTIFACTS = env("ARTIFACTS");
const TIMEOUT = 20_000;
const [BASE, QUOTE] = SYMBOL.split("-");

mkdirSync(ARTIFACTS, { recursive: true });
const step = (text) => process.stderr.write(`e2e: ${text}\n`);

/** Every /ws socket of a context goes through here, so the test can drop it. */
async function proxyWebSockets(context) {
  const sockets = [];
  sockets.alertFrames = [];
  await context.routeWebSocket(/\/ws(\?|$)/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => server.send(m));
    server.onMessage((m) => {
      // what reached the page on the private alerts channel, for the report
      if (String(m).includes('"channel":"alerts.')) sockets.alertFrames.push(String(m).slice(0, 300));
      ws.send(m);
    });
    sockets.push(ws);
  });
  return sockets;
}

/** A signed-in page on SYMBOL; with `proxy`, `page.sockets` are its /ws sockets. */
async function login(browser, user, trades = true, proxy = false) {
  const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
  const sockets = proxy ? await proxyWebSockets(context) : [];
  const page = await context.newPage();
  page.sockets = sockets;
  page.setDefaultTimeout(TIMEOUT);
  page.on("pageerror", (err) => step(`${user}: page error: ${err.message}`));
  await page.goto(BASE_URL);
  await page.fill("input[name=username]", user);
  await page.fill("input[name=password]", `${user}-demo`);
  await page.click("button[type=submit]");
  await page.getByTestId("user").filter({ hasText: user }).waitFor();
  await page.getByTestId(`market-${SYMBOL}`).click();
  if (trades) await page.getByTestId("ticket").filter({ hasText: SYMBOL }).waitFor();
  return page;
}

async function balances(page) {
  // All four cells in one evaluation: read one by one, a render could land between two reads
  // and pair the old available amount with the new reservation.
  await page.getByTestId(`available-${QUOTE}`).waitFor();
  await page.getByTestId(`available-${BASE}`).waitFor();
  return page.evaluate(([base, quote]) => {
    const text = (id) => document.querySelector(`[data-testid="${id}"]`).textContent.trim();
    const read = (asset) => ({ available: text(`available-${asset}`), reserved: text(`reserved-${asset}`) });
    return { [base]: read(base), [quote]: read(quote) };
  }, [BASE, QUOTE]);
}

/** Wait until the polled balances differ from `before` (the panels poll every 1.5 s). */
async function balancesChange(page, before) {
  const deadline = Date.now() + TIMEOUT;
  for (;;) {
    const now = await balances(page);
    if (JSON.stringify(now) !== JSON.stringify(before)) return now;
    if (Date.now() > deadline) throw new Error(`balances did not change from ${JSON.stringify(before)}`);
    await page.waitForTimeout(250);
  }
}

async function fillTicket(page, { side, price, qty, tif = "gtc", postOnly = false }) {
  await page.getByTestId(`ticket-side-${side}`).click();
  await page.getByTestId("ticket-type").selectOption("limit");
  await page.getByTestId("ticket-price").fill(price);
  await page.getByTestId("ticket-quantity").fill(qty);
  await page.getByTestId("ticket-tif").selectOption(tif);
  await page.getByTestId("ticket-post-only").setChecked(postOnly);
}

async function submit(page) {
  const result = page.getByTestId("ticket-result");
  const before = (await result.count()) ? await result.textContent() : null;
  await page.getByTestId("ticket-submit").click();
  await page.waitForFunction(
    (prev) => {
      const el = document.querySelector("[data-testid=ticket-result]");
      return el !== null && el.textContent !== prev;
    },
    before,
  );
  return (await result.textContent()).trim();
}

const ordersOf = (page) => page.getByTestId("open-order").filter({ hasText: SYMBOL });

/** Wait for a ladder level (prices compared as numbers: "30000" is "30000.00"). */
async function waitLevel(page, side, price, qty) {
  await page.waitForFunction(
    ([side, price, qty]) =>
      [...document.querySelectorAll(`[data-testid=ladder-${side}]`)].some(
        (r) => Number(r.dataset.price) === Number(price) && (qty === null || Number(r.dataset.qty) === Number(qty)),
      ),
    [side, price, qty],
  );
}

/** The live-data indicator: "up" with "live data" once the WebSocket is subscribed. */
async function waitConnection(page, state) {
  await page.waitForFunction(
    (state) => document.querySelector("[data-testid=connection]")?.dataset.state === state,
    state,
  );
  return (await page.getByTestId("connection").textContent()).trim();
}

const browser = await chromium.launch({
  executablePath: env("CHROMIUM", "/usr/bin/chromium"),
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
const report = {};
try {
  step("alice logs in");
  const alice = await login(browser, "alice", true, true);
  report.aliceStart = await balances(alice);
  await alice.getByTestId("connection").waitFor();
  report.connectionText = await waitConnection(alice, "up");
  report.connection = await alice.getByTestId("connection").getAttribute("data-state");

  step("the ticket refuses a price off the tick before sending anything");
  await fillTicket(alice, { side: "buy", price: BAD_PRICE, qty: QTY, postOnly: true });
  await alice.getByTestId("ticket-submit").click();
  report.tickError = (await alice.getByTestId("ticket-error-price").textContent()).trim();

  step("the server's rejection reason is shown (price band)");
  await fillTicket(alice, { side: "buy", price: FAR_PRICE, qty: QTY, postOnly: true });
  report.rejection = await submit(alice);

  step("alice places a limit buy that rests, and sees it in open orders");
  await fillTicket(alice, { side: "buy", price: PRICE, qty: QTY, postOnly: true });
  report.firstOrder = await submit(alice);
  await ordersOf(alice).first().waitFor();
  report.openAfterPlace = await ordersOf(alice).count();
  report.aliceResting = await balancesChange(alice, report.aliceStart);
  step("the resting order appears in the book, pushed over the WebSocket");
  await waitLevel(alice, "bid", PRICE, QTY);
  report.bookShowsOrder = true;
  await alice.screenshot({ path: join(ARTIFACTS, "web-main-alice-resting.png"), fullPage: true });

  step("the socket drops; the page reconnects and resyncs the book from a snapshot");
  const sockets = alice.sockets;
  const seqBefore = Number(await alice.getByTestId("ladder").getAttribute("data-seq"));
  await sockets.at(-1).close({ code: 4000, reason: "dropped by the e2e test" });
  report.droppedState = await waitConnection(alice, "degraded");
  report.reconnectedText = await waitConnection(alice, "up");
  await waitLevel(alice, "bid", PRICE, QTY);
  await alice.waitForFunction(() => document.querySelector("[data-testid=ladder]")?.dataset.synced === "true");
  report.socketsOpened = sockets.length;
  report.seqBefore = seqBefore;

  step("alice amends the order's quantity");
  await ordersOf(alice).first().getByTestId("amend").click();
  await alice.getByTestId("amend-quantity").fill(env("AMEND_QTY"));
  await alice.getByTestId("amend-save").click();
  await alice.getByTestId("open-orders-message").filter({ hasText: "Amended" }).waitFor();
  await ordersOf(alice).filter({ hasText: env("AMEND_QTY") }).first().waitFor();
  report.aliceAmended = await balancesChange(alice, report.aliceResting);

  step("alice cancels it; the reservation is released");
  await ordersOf(alice).first().getByTestId("cancel").click();
  await alice.getByTestId("open-orders-message").filter({ hasText: "Canceled" }).waitFor();
  await alice.waitForFunction(
    (symbol) =>
      ![...document.querySelectorAll("[data-testid=open-order]")].some((r) => r.textContent.includes(symbol)),
    SYMBOL,
  );
  report.aliceCanceled = await balancesChange(alice, report.aliceAmended);

  step("alice rests a buy again; bob crosses it with a sell");
  await fillTicket(alice, { side: "buy", price: PRICE, qty: QTY, postOnly: true });
  report.secondOrder = await submit(alice);
  await ordersOf(alice).first().waitFor();
  report.aliceBeforeFill = await balancesChange(alice, report.aliceCanceled);

  step("alice sets an alert on her order's price, crossed from above");
  await alice.getByTestId("alert-condition").selectOption("crosses_below");
  await alice.getByTestId("alert-level").fill(PRICE);
  await alice.getByTestId("alert-create").click();
  await alice.getByTestId("alert-message").waitFor();
  report.alertCreated = (await alice.getByTestId("alert-message").textContent()).trim();
  await alice.locator(`[data-testid=alert-row][data-status=active][data-symbol="${SYMBOL}"]`).waitFor();

  const bob = await login(browser, "bob");
  report.bobStart = await balances(bob);
  await fillTicket(bob, { side: "sell", price: PRICE, qty: QTY, tif: "ioc" });
  report.bobOrder = await submit(bob);
  report.bobAfterFill = await balancesChange(bob, report.bobStart);
  await bob.screenshot({ path: join(ARTIFACTS, "web-main-bob-filled.png"), fullPage: true });

  report.aliceAfterFill = await balancesChange(alice, report.aliceBeforeFill);
  await alice.waitForFunction(
    (symbol) =>
      ![...document.querySelectorAll("[data-testid=open-order]")].some((r) => r.textContent.includes(symbol)),
    SYMBOL,
  );
  report.aliceOpenAfterFill = await ordersOf(alice).count();

  step("alice's alert fires: a notification, and the alert turns triggered");
  report.alertFrames = alice.sockets.alertFrames;
  await alice.getByTestId("alert-notice").first().waitFor({ timeout: 30_000 });
  report.alertNotice = (await alice.getByTestId("alert-notice").first().textContent()).trim();
  await alice.locator(`[data-testid=alert-row][data-status=triggered][data-symbol="${SYMBOL}"]`).waitFor();
  report.alertStatus = "triggered";

  step("both screens show the trade on the tape and in the live candle");
  for (const page of [alice, bob]) {
    await page.waitForFunction(
      ([price, qty]) =>
        [...document.querySelectorAll("[data-testid=tape-row]")].some(
          (r) => Number(r.dataset.price) === Number(price) && Number(r.dataset.qty) === Number(qty),
        ),
      [PRICE, QTY],
    );
    await page.waitForFunction(
      (price) => Number(document.querySelector("[data-testid=chart-canvas]")?.dataset.lastClose) === Number(price),
      PRICE,
    );
  }
  report.tapeAndCandle = true;
  report.candleVolume = await alice.getByTestId("chart-canvas").getAttribute("data-last-volume");

  step("alice's position comes from the read models");
  await alice.getByTestId(`position-${SYMBOL}`).waitFor({ timeout: 60_000 });
  await alice.waitForFunction(
    ([symbol, qty]) => Number(document.querySelector(`[data-testid=position-${symbol}]`)?.dataset.qty) === Number(qty),
    [SYMBOL, QTY],
    { timeout: 60_000 },
  );
  report.alicePosition = await alice.getByTestId(`position-${SYMBOL}`).getAttribute("data-qty");
  await alice.waitForFunction(
    ([symbol, qty]) => Number(document.querySelector(`[data-testid=volume-${symbol}]`)?.textContent) >= Number(qty),
    [SYMBOL, QTY],
    { timeout: 60_000 },
  );
  report.marketVolume = (await alice.getByTestId(`volume-${SYMBOL}`).textContent()).trim();
  await alice.screenshot({ path: join(ARTIFACTS, "web-main-alice-filled.png"), fullPage: true });

  step("alice logs out");
  await alice.getByTestId("logout").click();
  await alice.getByTestId("login-form").waitFor();
  report.loggedOut = true;

  step("the auditor browses the event log");
  const auditor = await login(browser, "auditor", false);
  await auditor.getByTestId("event-row").first().waitFor();
  report.auditorEvents = await auditor.getByTestId("event-row").count();

  step("the auditor filters alice's account on the symbol and finds the whole story");
  await auditor.getByTestId("events-filter-account").fill("alice-1");
  await auditor.getByTestId("events-filter-symbol").fill(SYMBOL);
  await auditor.getByTestId("events-apply").click();
  await auditor.waitForFunction(
    () => [...document.querySelectorAll("[data-testid=event-row]")].some((r) => r.dataset.type === "TradeExecuted"),
  );
  report.auditorTypes = await auditor
    .getByTestId("event-row")
    .evaluateAll((rows) => rows.map((r) => r.dataset.type));
  await auditor.screenshot({ path: join(ARTIFACTS, "web-auditor-events.png"), fullPage: true });

  step("the auditor opens alice's account as of the first order's acceptance");
  const accepted = auditor.locator("[data-testid=event-row][data-type=OrderAccepted]").first();
  report.asOfPosition = Number(await accepted.getAttribute("data-position"));
  await accepted.getByTestId("event-as-of").click();
  await auditor
    .locator(`[data-testid=as-of-state][data-position="${report.asOfPosition}"]`)
    .waitFor();
  report.asOfQuote = await auditor
    .getByTestId(`as-of-balance-${QUOTE}`)
    .evaluate((r) => ({ available: r.dataset.available, reserved: r.dataset.reserved }));
  await auditor.screenshot({ path: join(ARTIFACTS, "web-auditor-as-of.png"), fullPage: true });
} catch (exc) {
  for (const [i, context] of browser.contexts().entries()) {
    for (const page of context.pages()) {
      await page.screenshot({ path: join(ARTIFACTS, `web-failure-${i}.png`), fullPage: true }).catch(() => {});
    }
  }
  report.error = String(exc?.stack ?? exc);
  process.exitCode = 1;
} finally {
  await browser.close();
  process.stdout.write(`${JSON.stringify(report)}\n`);
}
