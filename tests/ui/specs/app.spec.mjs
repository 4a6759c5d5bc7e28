// What a person sees: the app's identity, connecting to a daemon and seeing
// it everywhere, disconnecting, a bad address, and settings that persist.
import { $$, browser, expect } from "@wdio/globals";
import { startDaemon } from "../support/daemon.mjs";
import { byTestId, graphNode, open, reveal, row, screenshot, waitOnline } from "../support/app.mjs";

describe("Conclave desktop app", () => {
  let daemon;
  let ourPeerId;

  before(async () => {
    daemon = await startDaemon();
  });

  after(async () => {
    await daemon?.stop();
  });

  it("starts and shows its own PeerId", async () => {
    await waitOnline();
    await open("identity");
    const peerId = byTestId("peer-id");
    await expect(peerId).toHaveText(/^12D3KooW[1-9A-HJ-NP-Za-km-z]{44}$/);
    ourPeerId = await peerId.getText();
    await expect(byTestId("header-peer-id")).toHaveAttribute("title", ourPeerId);
    await expect(byTestId("peer-id-qr")).toBeDisplayed();
    // Real PQ fingerprints when the key store has PQ keys, else a placeholder
    // that says so; never made-up values.
    const pqState = await byTestId("pq-state").getText();
    if (pqState === "not yet available") {
      await expect(byTestId("pq-record")).not.toExist();
    } else {
      await expect(byTestId("pq-record")).toHaveText(/^[0-9a-f]{32}$/);
      await expect(byTestId("pq-ml-dsa")).toHaveText(/^[0-9a-f]{32}$/);
      await expect(byTestId("pq-ml-kem")).toHaveText(/^[0-9a-f]{32}$/);
    }
    await screenshot("01-identity");
  });

  it("lays out every Network health card at once, waiting for the node, at the size it keeps once figures come", async () => {
    await open("health");
    // A reload starts the window afresh: its first layout comes before any
    // figures (the live state starts after the view mounts).
    await browser.refresh();
    const firstLayout = async () => browser.execute(() => document.body.dataset.healthFirstLayout ?? null);
    await browser.waitUntil(async () => (await firstLayout()) !== null, { timeoutMsg: "Network health was never laid out" });
    const cards = ["peers", "reachability", "dht", "traffic", "bandwidth", "messages", "connections", "addresses", "gossip"];
    const first = JSON.parse(await firstLayout());
    expect(first.map((c) => c.card)).toEqual(cards);
    expect(first.filter((c) => !c.loading).map((c) => c.card)).toEqual([]);

    // Every card shows figures once the first sample arrives.
    const now = () =>
      browser.execute(() =>
        [...document.querySelectorAll("[data-health-card]")].map((el) => ({
          card: el.dataset.healthCard,
          loading: el.dataset.loading === "true",
          height: el.getBoundingClientRect().height,
        })),
      );
    await browser.waitUntil(async () => (await now()).every((c) => !c.loading), {
      timeout: 30000,
      timeoutMsg: "some Network health cards still wait for the node",
    });
    await expect(byTestId("health-peers")).toHaveText(/^\d+$/);
    // The tiles and the charts keep the height they had while waiting, so
    // nothing below them moves (the cards under them grow with their lists).
    const after = await now();
    for (const card of ["peers", "reachability", "dht", "traffic", "bandwidth", "messages"]) {
      const [was, is] = [first, after].map((l) => l.find((c) => c.card === card).height);
      expect({ card, moved: Math.abs(is - was) > 1 }).toEqual({ card, moved: false });
    }
  });

  it("connects to a conclaved by its multiaddr and shows it in the table and the graph", async () => {
    await open("peers");
    await expect(byTestId("empty-state")).toBeDisplayed();
    await byTestId("connect-addr").setValue(daemon.addr);
    await byTestId("connect-button").click();
    await byTestId("connect-ok").waitForDisplayed({ timeout: 30000 });

    const peerRow = row(daemon.peerId);
    await peerRow.waitForDisplayed();
    await expect(peerRow.$('[data-testid="peer-transport"]')).toHaveText("quic");
    // The first ping reports the RTT shortly after the connection opens.
    await browser.waitUntil(async () => /\d ms$/.test(await peerRow.$('[data-testid="peer-rtt"]').getText()), {
      timeout: 40000,
      timeoutMsg: "no RTT for the daemon",
    });
    await expect(graphNode(daemon.peerId)).toExist();

    // The daemon sees us too, under the PeerId the app shows.
    const theirView = await daemon.peers();
    expect(theirView.map((p) => p.peer_id)).toContain(ourPeerId);

    await screenshot("02-peers-connected");
    await reveal(byTestId("topology"));
    await screenshot("03-topology");
  });

  it("shows the connection and non-zero traffic in Network health", async () => {
    await open("health");
    await browser.waitUntil(async () => (await byTestId("health-peers").getText()) === "1", {
      timeoutMsg: "Network health does not count the peer",
    });
    // Both ends may dial, and AutoNAT dial-backs open short-lived ones, so
    // there can be several QUIC connections to one peer.
    await expect(byTestId("conn-transport-quic")).toHaveText(/quic\s*[1-9]$/i);
    await expect(byTestId("conn-path-direct")).toBeDisplayed();
    await browser.waitUntil(
      async () =>
        !/^0 B$/.test(await byTestId("health-bytes-in").getText()) &&
        !/^0 B$/.test(await byTestId("health-bytes-out").getText()),
      { timeoutMsg: "no traffic counted" },
    );
    await expect(byTestId("chart-bandwidth")).toBeDisplayed();
    await screenshot("04-network-health");
  });

  it("disconnect removes the peer", async () => {
    await open("peers");
    await (await reveal(row(daemon.peerId).$('[data-testid="disconnect"]'))).click();
    await row(daemon.peerId).waitForExist({ reverse: true, timeoutMsg: "the row stayed after disconnect" });
    await expect(graphNode(daemon.peerId)).not.toExist();
    await expect(byTestId("empty-state")).toBeDisplayed();
    await screenshot("05-disconnected");
  });

  it("an invalid multiaddr shows an error and changes nothing", async () => {
    await (await reveal(byTestId("connect-addr"))).setValue("not/a/multiaddr");
    await byTestId("connect-button").click();
    const error = byTestId("connect-error");
    await error.waitForDisplayed();
    await expect(error).toHaveText(/invalid multiaddr/i);
    await expect(byTestId("empty-state")).toBeDisplayed();
    await expect($$('[data-testid="peer-row"]')).toBeElementsArrayOfSize(0);
    await screenshot("06-invalid-multiaddr");
  });

  it("settings survive a restart of the app", async () => {
    await open("settings");
    const bootstrap = `/ip4/127.0.0.1/udp/9/quic-v1/p2p/${daemon.peerId}`;
    await byTestId("settings-bootstrap").setValue(bootstrap);
    await byTestId("settings-max").setValue("42");
    await byTestId("settings-min").setValue("0");
    await byTestId("settings-relay").click();
    await byTestId("settings-save").click();
    await byTestId("settings-saved").waitForDisplayed({ timeout: 30000 });
    await waitOnline();

    // A new session ends this app process and starts a new one on the same profile.
    await browser.reloadSession();
    await waitOnline();
    await open("settings");
    await expect(byTestId("settings-max")).toHaveValue("42");
    await expect(byTestId("settings-bootstrap")).toHaveValue(bootstrap);
    await expect(byTestId("settings-relay")).toBeSelected();
    await expect(byTestId("settings-mdns")).not.toBeSelected();
    await open("identity");
    await expect(byTestId("peer-id")).toHaveText(ourPeerId);
    await open("settings");
    await screenshot("07-settings-after-restart");
  });
});
