// CoinJoin in the app: without a chain source the tab says what to
// configure; on the kernel-backed regtest node of tests/chain the app mixes
// a coin with two conclaved daemons (driven through conclavectl), showing
// the fee before it joins, the phases, the txid and its unmixed change; and
// with a disruptor daemon in the round it shows the disruptor's coin
// excluded, with the reason and until when. Wallet keys live in the test
// session's gnome-keyring.
import fs from "node:fs";
import path from "node:path";
import { $, browser, expect } from "@wdio/globals";
import { startChain } from "../support/chain.mjs";
import { startDaemon } from "../support/daemon.mjs";
import { byTestId, open, reveal, screenshot, waitOnline } from "../support/app.mjs";
import { profileDir } from "../wdio.conf.mjs";

// Epoch ticks fall on multiples of the epoch in unix time, for every node.
const EPOCH_SECS = 6;
// Phases end as soon as every message is in; the timeout only bounds a
// peer that withholds, so it can be roomy for a loaded machine.
const PHASE_TIMEOUT_SECS = 15;
const DENOMINATION = 100000;
const request = (id) => $(`[data-testid="coinjoin-request"][data-request-id="${id}"]`);

describe("CoinJoin", () => {
  let chain;
  let alice;
  let bob;
  let mallory;
  const configFile = path.join(profileDir, "config.toml");
  let configBefore;

  const chainFlags = () => [
    "--network",
    "regtest",
    "--bitcoind-rpc",
    chain.rpcUrl,
    "--bitcoind-cookie",
    chain.cookieFile,
    "--coinjoin-epoch",
    String(EPOCH_SECS),
    "--coinjoin-phase-timeout",
    String(PHASE_TIMEOUT_SECS),
  ];

  async function openCoinJoin() {
    await open("sessions");
    await byTestId("tab-coinjoin").click();
  }

  async function connectApp(daemon) {
    await open("peers");
    await byTestId("connect-addr").setValue(daemon.addr);
    await byTestId("connect-button").click();
    await byTestId("connect-ok").waitForDisplayed({ timeout: 30000 });
  }

  /** A coin of `daemon`'s wallet, mined on the chain. */
  async function daemonCoin(daemon, sats) {
    const { address } = await daemon.ctl(["wallet", "address"]);
    return chain.fund(address, sats);
  }

  function daemonJoin(daemon, coin) {
    return daemon.ctl(["coinjoin", "join", "--denomination", String(DENOMINATION), "--inputs", coin, "--fee-rate", "2", "--max-fee", "5000"]);
  }

  /** Funds a new address of the app's wallet (shown in the tab) and quotes a join of that coin. */
  async function appCoinQuoted(sats, denomination = DENOMINATION) {
    await openCoinJoin();
    const shown = byTestId("coinjoin-address");
    const before = (await shown.isExisting()) ? await shown.getText() : "";
    await byTestId("coinjoin-new-address").click();
    await browser.waitUntil(async () => (await shown.isExisting()) && (await shown.getText()) !== before, {
      timeout: 20000,
      timeoutMsg: "no new wallet address appeared",
    });
    const coin = await chain.fund(await shown.getText(), sats);
    await byTestId("coinjoin-coins").setValue(coin);
    await byTestId("coinjoin-denomination").setValue(String(denomination));
    await byTestId("coinjoin-fee-rate").selectByAttribute("value", "2");
    await byTestId("coinjoin-quote-button").click();
    await byTestId("coinjoin-quote").waitForDisplayed({ timeout: 20000 });
    return coin;
  }

  /** Clicks Join and returns the new request's id (once the request shows). */
  async function appJoin() {
    const joined = byTestId("coinjoin-joined");
    const earlier = (await joined.isExisting()) ? await joined.getAttribute("data-request-id") : null;
    await byTestId("coinjoin-join-button").click();
    await browser.waitUntil(
      async () =>
        (await byTestId("coinjoin-join-error").isDisplayed()) ||
        ((await joined.isExisting()) && (await joined.getAttribute("data-request-id")) !== earlier),
      { timeout: 30000, timeoutMsg: "joining neither succeeded nor failed" },
    );
    if (await byTestId("coinjoin-join-error").isDisplayed()) {
      throw new Error(`the app refused to join: ${await byTestId("coinjoin-join-error").getText()}`);
    }
    const id = await joined.getAttribute("data-request-id");
    await request(id).waitForExist({ timeout: 10000 });
    return id;
  }

  /** Waits for a request shown in the app to be final; its phase. */
  async function appFinished(id) {
    await browser.waitUntil(async () => ["done", "failed", "cancelled"].includes(await request(id).getAttribute("data-phase")), {
      timeout: 120000,
      interval: 250,
      timeoutMsg: `request ${id} did not finish in the app`,
    });
    return request(id).getAttribute("data-phase");
  }

  before(async () => {
    chain = await startChain();
    [alice, bob] = await Promise.all([startDaemon(chainFlags()), startDaemon(chainFlags())]);
    await bob.ctl(["connect", alice.addr]);
  });

  after(async () => {
    // The specs after this one run the app without a chain source again.
    if (configBefore !== undefined) fs.writeFileSync(configFile, configBefore);
    await Promise.all([alice?.stop(), bob?.stop(), mallory?.stop()]);
    await chain?.stop();
  });

  it("says what to configure when the profile has no chain source", async () => {
    await waitOnline();
    await openCoinJoin();
    const card = byTestId("coinjoin-unavailable");
    await card.waitForDisplayed({ timeout: 20000 });
    await expect(card).toHaveAttribute("data-state", "off");
    const reason = byTestId("coinjoin-unavailable-reason");
    await expect(reason).toHaveText(/^CoinJoin has no chain source: add a \[coinjoin\] section with network, bitcoind_rpc and bitcoind_cookie/);
    await expect(reason).toHaveText(new RegExp(`${configFile.replaceAll("/", "\\/")}$`));
    await expect(byTestId("coinjoin-join")).not.toExist();
    await screenshot("30-coinjoin-not-configured");
  });

  it("mixes a coin with two daemons: fee before joining, the phases, the txid and unmixed change", async () => {
    // The profile's [coinjoin] section points at the regtest node; a new
    // session restarts the app on it.
    configBefore = fs.readFileSync(configFile, "utf8");
    fs.appendFileSync(
      configFile,
      [
        "",
        "[coinjoin]",
        'network = "regtest"',
        `bitcoind_rpc = "${chain.rpcUrl}"`,
        `bitcoind_cookie = "${chain.cookieFile}"`,
        `epoch_secs = ${EPOCH_SECS}`,
        `phase_timeout_secs = ${PHASE_TIMEOUT_SECS}`,
        "",
      ].join("\n"),
    );
    await browser.reloadSession();
    await waitOnline();
    await connectApp(alice);
    await connectApp(bob);
    await openCoinJoin();
    await byTestId("coinjoin-join").waitForDisplayed({ timeout: 30000 });

    const coin = await appCoinQuoted(150000);
    const fee = Number(await byTestId("coinjoin-quote-fee").getText());
    expect(fee).toBeGreaterThan(0);
    expect(fee).toBeLessThan(1000);
    await expect(byTestId("coinjoin-quote")).toHaveText(/150000 sats/);
    await expect(byTestId("coinjoin-quote-change")).toHaveText(String(150000 - DENOMINATION - fee));
    await reveal(byTestId("coinjoin-quote"));
    await screenshot("31-coinjoin-quote");

    // The daemons join first: two requests never make a session (it needs
    // three), so the round that forms is the one with the app in it.
    const [aliceCoin, bobCoin] = await Promise.all([daemonCoin(alice, 151000), daemonCoin(bob, 152000)]);
    const [{ request_id: aliceId }, { request_id: bobId }] = await Promise.all([daemonJoin(alice, aliceCoin), daemonJoin(bob, bobCoin)]);
    // The app joins right after a tick: its request then reaches everyone
    // far from the next tick's cutoff. One announced within a tenth of the
    // settle time of the cutoff is taken in by its author but not yet by
    // the others, and those two views cannot form one session (a known
    // gap of the service, to be closed there).
    await browser.waitUntil(async () => Date.now() % (EPOCH_SECS * 1000) < 300, { timeout: EPOCH_SECS * 1000 + 1000, interval: 50 });
    const id = await appJoin();
    await expect(request(id).$('[data-testid="coinjoin-peers"]')).toHaveText(/peer/);

    const [theirs] = await Promise.all([
      alice.ctl(["coinjoin", "status", aliceId, "--wait", "120"]),
      bob.ctl(["coinjoin", "status", bobId, "--wait", "120"]),
    ]);
    expect(theirs.phase).toBe("done");
    expect(await appFinished(id)).toBe("done");
    const shown = request(id);
    await expect(shown.$('[data-testid="coinjoin-txid"]')).toHaveText(theirs.txid);
    // Every phase of the run that made the transaction is done, with three peers.
    const shownRuns = await shown.$$('[data-testid="coinjoin-run"]');
    const last = shownRuns[shownRuns.length - 1];
    await expect(last).toHaveText(/Run \d+ · 3 peers/);
    for (const step of ["key_exchange", "ciphertexts", "slot_reservation", "dc_net", "acceptance", "signatures", "broadcasting"]) {
      await expect(last.$(`[data-step="${step}"]`)).toHaveElementClass("done");
    }
    await expect(shown.$('[data-testid="coinjoin-mixed-output"]')).toHaveText(new RegExp(`^${DENOMINATION} sats`));
    await expect(shown.$('[data-testid="coinjoin-change"]')).toHaveText(/unmixed/);
    const paid = Number((await shown.$('[data-testid="coinjoin-fee-paid"]').getText()).split(" ")[0]);
    expect(paid).toBeLessThanOrEqual(fee);
    // The chain has it in a block, spending the app's coin.
    const { confirmations, hex } = await chain.tx(theirs.txid);
    expect(confirmations).toBeGreaterThanOrEqual(1);
    expect(hex).toContain(Buffer.from(coin.split(":")[0], "hex").reverse().toString("hex"));
    await reveal(shown);
    await screenshot("32-coinjoin-mixed");
  });

  it("keeps a request without enough peers waiting for the next round until it is cancelled", async () => {
    // A denomination nobody else mixes: peers keep a cancelled request until
    // it expires (nothing withdraws it), and one in the next test's pairing
    // would be in its sessions.
    await appCoinQuoted(120000, 50000);
    const id = await appJoin();
    const shown = request(id);
    await expect(shown).toHaveAttribute("data-phase", "waiting");
    await expect(shown.$('[data-testid="coinjoin-retry"]')).toHaveText(/^Waiting for the next round/);
    await shown.$('[data-testid="coinjoin-cancel"]').click();
    await browser.waitUntil(async () => (await shown.getAttribute("data-phase")) === "cancelled", {
      timeout: 20000,
      timeoutMsg: "the request was not cancelled",
    });
    await expect(shown.$('[data-testid="coinjoin-phase"]')).toHaveText("Cancelled");
    await expect(shown.$('[data-testid="coinjoin-cancel"]')).not.toExist();
  });

  it("shows a disruptor daemon's coin excluded, why and until when, and mixes without it", async () => {
    const epochMs = EPOCH_SECS * 1000;
    mallory = await startDaemon([...chainFlags(), "--coinjoin-disrupt", "dc-garbage"]);
    await Promise.all([mallory.ctl(["connect", alice.addr]), mallory.ctl(["connect", bob.addr])]);
    await connectApp(mallory);
    await appCoinQuoted(160000);
    const [aliceCoin, bobCoin, malloryCoin] = await Promise.all([
      daemonCoin(alice, 161000),
      daemonCoin(bob, 162000),
      daemonCoin(mallory, 163000),
    ]);
    // Alice and the disruptor first (two requests make no session); the
    // other two must reach the same tick as they do, so they join right
    // after a tick, with half an epoch to spare before the next one's cutoff.
    const [{ request_id: aliceId }] = await Promise.all([daemonJoin(alice, aliceCoin), daemonJoin(mallory, malloryCoin)]);
    await browser.waitUntil(async () => Date.now() % epochMs < 300, { timeout: epochMs + 1000, interval: 50 });
    const [id, { request_id: bobId }] = await Promise.all([appJoin(), daemonJoin(bob, bobCoin)]);

    const [theirs] = await Promise.all([
      alice.ctl(["coinjoin", "status", aliceId, "--wait", "180"]),
      bob.ctl(["coinjoin", "status", bobId, "--wait", "180"]),
    ]);
    expect(theirs.phase).toBe("done");
    expect(theirs.excluded.map((e) => e.outpoint)).toEqual([malloryCoin]);
    expect(await appFinished(id)).toBe("done");
    const shown = request(id);
    await expect(shown.$('[data-testid="coinjoin-txid"]')).toHaveText(theirs.txid);
    const exclusion = shown.$(`[data-testid="coinjoin-exclusion"][data-outpoint="${malloryCoin}"]`);
    await expect(exclusion).toBeDisplayed();
    await expect(exclusion).toHaveText(new RegExp(`^${malloryCoin}: .+ \\(excluded until .+\\)$`));
    await expect(shown.$$('[data-testid="coinjoin-exclusion"]')).toBeElementsArrayOfSize(1);
    // The run the disruptor spoiled shows the phase blame began after (its
    // garbage leaves an honest output missing at acceptance); the next run,
    // without it, is complete.
    const runs = await shown.$$('[data-testid="coinjoin-run"]');
    expect(runs.length).toBeGreaterThanOrEqual(2);
    await expect(runs[0].$("li.failed")).toExist();
    await expect(runs[runs.length - 1]).toHaveText(/· 3 peers/);
    await expect(runs[runs.length - 1].$('[data-step="broadcasting"]')).toHaveElementClass("done");
    const { hex } = await chain.tx(theirs.txid);
    expect(hex).not.toContain(Buffer.from(malloryCoin.split(":")[0], "hex").reverse().toString("hex"));
    await reveal(exclusion);
    await screenshot("33-coinjoin-excluded");
  });
});
