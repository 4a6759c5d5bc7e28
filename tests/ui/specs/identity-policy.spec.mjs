// Identity backup and restore, and who may connect: deny, allow, private
// mode and undo, against a conclaved started by the test. Runs after
// app.spec.mjs on the same profile, in a fresh app process.
import fs from "node:fs";
import path from "node:path";
import { $, browser, expect } from "@wdio/globals";
import { startDaemon } from "../support/daemon.mjs";
import { byTestId, open, reveal, row, screenshot, waitOnline } from "../support/app.mjs";
import { profileDir } from "../wdio.conf.mjs";

const PASSPHRASE = "correct horse battery staple";
const WRONG_PASSPHRASE = "wrong horse battery staple";
/** A peer's entry in the Peers view's "denied" or "allowed" list. */
const listedSelector = (list, peerId) => `[data-testid="${list}-peer"][data-peer-id="${peerId}"]`;
const listed = (list, peerId) => $(listedSelector(list, peerId));
const rowSelector = (peerId) => `[data-testid="peer-row"][data-peer-id="${peerId}"]`;

/**
 * Clicks the element `selector` finds, found and clicked in one step inside
 * the page: peer rows are redrawn whenever the peer's details change, so a
 * handle WebDriver found a moment earlier may already be stale.
 */
async function clickNow(selector) {
  await $(selector).waitForExist();
  await browser.execute((sel) => {
    const el = document.querySelector(sel);
    el.scrollIntoView({ block: "center" });
    el.click();
  }, selector);
}

/** Waits until nothing matches `selector`. */
async function waitGone(selector, timeoutMsg) {
  await browser.waitUntil(() => browser.execute((sel) => !document.querySelector(sel), selector), { timeoutMsg });
}

describe("Identity backup and restore", () => {
  const backupFile = path.join(process.env.CONCLAVE_UI_WORK, "identity.backup");
  let ourPeerId;

  it("backs the identity up to a passphrase-encrypted file", async () => {
    await waitOnline();
    await open("identity");
    ourPeerId = await byTestId("peer-id").getText();

    await (await reveal(byTestId("backup-path"))).setValue(backupFile);
    await byTestId("backup-pass").setValue("short");
    await expect(byTestId("backup-strength")).toHaveText(/at least \d+ characters/i);
    await byTestId("backup-pass").setValue(PASSPHRASE);
    await expect(byTestId("backup-strength")).toHaveText("Strong.");
    await byTestId("backup-pass2").setValue(PASSPHRASE);
    await byTestId("backup-export").click();
    await byTestId("backup-ok").waitForDisplayed({ timeout: 30000 });
    await expect(byTestId("backup-ok")).toHaveText(new RegExp(backupFile.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));

    // Only the owner may read it, and nothing in it is the passphrase or a key in clear.
    expect(fs.statSync(backupFile).mode & 0o777).toBe(0o600);
    const text = fs.readFileSync(backupFile, "utf8");
    expect(JSON.parse(text).magic).toBe("conclave-identity-backup-v1");
    expect(text).not.toContain(PASSPHRASE);
    // The passphrase fields are cleared once the backup is written.
    await expect(byTestId("backup-pass")).toHaveValue("");
    await screenshot("08-backup-exported");
  });

  it("a wrong passphrase shows an error and changes nothing", async () => {
    const before = fs.readFileSync(backupFile);
    await (await reveal(byTestId("restore-path"))).setValue(backupFile);
    await byTestId("restore-pass").setValue(WRONG_PASSPHRASE);
    await byTestId("restore-open").click();
    const error = byTestId("restore-error");
    await error.waitForDisplayed({ timeout: 30000 });
    await expect(error).toHaveText(/wrong passphrase/i);
    await expect(error).toHaveText(/nothing was changed/i);
    await expect(byTestId("restore-preview")).not.toExist();
    await expect(byTestId("restore-confirm")).not.toExist();
    await expect(byTestId("peer-id")).toHaveText(ourPeerId);
    await expect(byTestId("node-state")).toHaveText(/Online/);
    expect(fs.readFileSync(backupFile).equals(before)).toBe(true);
    await screenshot("09-restore-wrong-passphrase");
  });

  it("the right passphrase shows the backup's PeerId and restores it after confirmation", async () => {
    await byTestId("restore-pass").setValue(PASSPHRASE);
    await byTestId("restore-open").click();
    await byTestId("restore-preview").waitForDisplayed({ timeout: 30000 });
    await expect(byTestId("restore-peer-id")).toHaveText(ourPeerId);
    await expect(byTestId("restore-preview")).toHaveText(/already has/);
    await (await reveal(byTestId("restore-confirm"))).click();
    await byTestId("restore-done").waitForDisplayed({ timeout: 40000 });
    await expect(byTestId("restore-done")).toHaveText(/the one this profile had/);
    await waitOnline();
    await expect(byTestId("peer-id")).toHaveText(ourPeerId);
    await screenshot("10-restore-confirmed");
  });
});

describe("Who may connect", () => {
  let daemon;

  before(async () => {
    daemon = await startDaemon();
  });

  after(async () => {
    await daemon?.stop();
  });

  async function connectDaemon() {
    await (await reveal(byTestId("connect-addr"))).setValue(daemon.addr);
    await byTestId("connect-button").click();
    await byTestId("connect-ok").waitForDisplayed({ timeout: 30000 });
    await row(daemon.peerId).waitForDisplayed();
  }

  it("deny closes the daemon's connection and refuses it until it is allowed", async () => {
    await open("peers");
    await connectDaemon();
    await clickNow(`${rowSelector(daemon.peerId)} [data-testid="deny"]`);
    await waitGone(rowSelector(daemon.peerId), "the denied peer stayed connected");
    await expect(listed("denied", daemon.peerId)).toBeDisplayed();
    await expect(byTestId("denied-count")).toHaveText("1");

    // A dial to a denied peer is refused by our own node.
    await (await reveal(byTestId("connect-addr"))).setValue(daemon.addr);
    await byTestId("connect-button").click();
    await byTestId("connect-error").waitForDisplayed({ timeout: 30000 });
    await expect(byTestId("connect-error")).toHaveText(/deny list/);
    await expect(byTestId("connect-error")).toHaveText(/Who may connect/);
    await expect(row(daemon.peerId)).not.toExist();
    await reveal(byTestId("policy-card"));
    await screenshot("11-peer-denied");
  });

  it("allow and private mode admit the daemon; removing it from the list (undo) closes it", async () => {
    await clickNow(`${listedSelector("denied", daemon.peerId)} [data-testid="allow"]`);
    await expect(listed("allowed", daemon.peerId)).toBeDisplayed();
    await expect(byTestId("denied-count")).toHaveText("0");
    await connectDaemon();

    // Private mode keeps allowed peers connected.
    await (await reveal(byTestId("private-mode"))).click();
    await expect(byTestId("private-mode")).toBeSelected();
    await expect(byTestId("private-empty")).not.toExist();
    await expect(row(daemon.peerId)).toBeDisplayed();
    // The policy is the node's own, saved in the profile's policy.json.
    const file = await byTestId("policy-card").$(".file-note .mono").getText();
    const saved = JSON.parse(fs.readFileSync(file, "utf8"));
    expect(saved.private).toBe(true);
    expect(saved.allow).toContain(daemon.peerId);
    await reveal(byTestId("policy-card"));
    await screenshot("12-peer-allowed-private");

    // Undo: off the allow list, private mode now refuses it.
    await clickNow(`${listedSelector("allowed", daemon.peerId)} [data-testid="unlist"]`);
    await expect(byTestId("allowed-count")).toHaveText("0");
    await expect(byTestId("private-empty")).toBeDisplayed();
    await waitGone(rowSelector(daemon.peerId), "private mode left an unlisted peer connected");
    await browser.waitUntil(async () => !(await daemon.peers()).length, {
      timeoutMsg: "the daemon still sees the connection",
    });

    await (await reveal(byTestId("private-mode"))).click();
    await expect(byTestId("private-mode")).not.toBeSelected();
    await connectDaemon();
    await reveal(byTestId("policy-card"));
    await screenshot("13-policy-undone");
  });
});

describe("Logs", () => {
  it("shows the node's lines, and no log holds a passphrase", async () => {
    await open("logs");
    await byTestId("logs-view").$('input[type="search"]').setValue("policy changed");
    await browser.waitUntil(
      async () => (await byTestId("logs-view").getText()).includes("connection policy changed"),
      { timeoutMsg: "the Logs view lacks the policy changes" },
    );
    // The daily log files get the same lines (written in the background).
    const logDir = path.join(profileDir, "logs");
    const logs = () =>
      fs
        .readdirSync(logDir)
        .filter((f) => f.endsWith(".log"))
        .map((f) => fs.readFileSync(path.join(logDir, f), "utf8"))
        .join("\n");
    await browser.waitUntil(async () => logs().includes("connection policy changed"), {
      timeoutMsg: `no policy changes in ${logDir}`,
    });
    const text = logs() + (await byTestId("logs-view").getText());
    expect(text).toContain("identity backed up");
    expect(text).not.toContain(PASSPHRASE);
    expect(text).not.toContain(WRONG_PASSPHRASE);
    await screenshot("14-logs");
  });
});
