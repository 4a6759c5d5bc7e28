// MuSig2 in the app: a session created in the Sessions view with two
// conclaved signers that join through conclavectl, and an invitation from a
// daemon joined in the app. Keys live in the test session's gnome-keyring.
import { $, browser, expect } from "@wdio/globals";
import { startDaemon } from "../support/daemon.mjs";
import { byTestId, open, reveal, screenshot, waitOnline } from "../support/app.mjs";

const session = (id) => $(`[data-testid="session"][data-session-id="${id}"]`);

describe("Signing sessions", () => {
  let alice;
  let bob;
  let appKey;
  let aliceKey;
  let bobKey;

  before(async () => {
    [alice, bob] = await Promise.all([startDaemon(), startDaemon()]);
  });

  after(async () => {
    await Promise.all([alice?.stop(), bob?.stop()]);
  });

  it("connects to two signers and makes a signing key", async () => {
    await waitOnline();
    await open("peers");
    for (const daemon of [alice, bob]) {
      await byTestId("connect-addr").setValue(daemon.addr);
      await byTestId("connect-button").click();
      await byTestId("connect-ok").waitForDisplayed({ timeout: 30000 });
    }
    aliceKey = (await alice.ctl(["wallet", "new"])).pubkey;
    bobKey = (await bob.ctl(["wallet", "new"])).pubkey;

    await open("sessions");
    await byTestId("signing-new-key").click();
    const key = byTestId("signing-key");
    await key.waitForDisplayed({ timeout: 30000 });
    appKey = await key.getText();
    expect(appKey).toMatch(/^0[23][0-9a-f]{64}$/);
  });

  it("creates a session, shows who is outstanding, and shows the signature once the daemons join", async () => {
    // Keys separated by commas (WebKitWebDriver drops typed newlines).
    await byTestId("session-signers").setValue([appKey, aliceKey, bobKey].join(", "));
    await byTestId("session-message").setValue("Pay 0.1 BTC to Carol");
    await byTestId("session-create-button").click();
    await browser.waitUntil(
      async () => (await byTestId("session-created").isDisplayed()) || (await byTestId("session-create-error").isDisplayed()),
      { timeout: 60000, timeoutMsg: "creating the session neither succeeded nor failed" },
    );
    if (await byTestId("session-create-error").isDisplayed()) {
      throw new Error(`the app refused to create the session: ${await byTestId("session-create-error").getText()}`);
    }

    // The new session waits for the two daemons, and says so.
    const created = await $('[data-testid="session"][data-phase="join"]');
    await created.waitForExist({ timeout: 10000 });
    const sessionId = await created.getAttribute("data-session-id");
    await expect(created.$('[data-testid="session-holdouts"]')).toHaveText(/Waiting for:/);
    await reveal(created);
    await screenshot("20-session-waiting");

    // Each daemon sees what it is asked to sign, then joins.
    for (const daemon of [alice, bob]) {
      const invitations = await daemon.ctl(["musig2", "invitations", "--wait", "30"]);
      const invitation = invitations.find((i) => i.session_id === sessionId);
      expect(invitation?.signing).toEqual({ kind: "message", message: Buffer.from("Pay 0.1 BTC to Carol").toString("hex") });
      await daemon.ctl(["musig2", "join", sessionId]);
    }

    const signature = session(sessionId).$('[data-testid="session-signature"]');
    await signature.waitForDisplayed({ timeout: 60000 });
    await expect(signature).toHaveText(/^[0-9a-f]{128}$/);
    await expect(session(sessionId)).toHaveAttribute("data-phase", "done");
    const theirs = await alice.ctl(["musig2", "status", sessionId, "--wait", "30"]);
    expect(theirs.phase).toBe("done");
    expect(theirs.signature).toBe(await signature.getText());
    await expect(session(sessionId).$('[data-testid="session-aggregate"]')).toHaveText(theirs.aggregate_pubkey);
    await reveal(session(sessionId));
    await screenshot("21-session-signed");
  });

  it("announces an invitation from a daemon and signs once the person joins", async () => {
    const message = Buffer.from("Rotate the cold key").toString("hex");
    const { session_id: sessionId } = await alice.ctl([
      "musig2",
      "create",
      "--signers",
      `${aliceKey},${appKey}`,
      "--message",
      message,
    ]);
    const invitation = $(`[data-testid="invitation"][data-session-id="${sessionId}"]`);
    await invitation.waitForDisplayed({ timeout: 30000 });
    await expect(invitation.$('[data-testid="invitation-signing"]')).toHaveText("Message “Rotate the cold key”");
    await expect(byTestId("nav-sessions-badge")).toHaveText("1");
    // Nothing is signed before the person decides.
    expect((await alice.ctl(["musig2", "status", sessionId])).phase).toBe("join");
    await reveal(invitation);
    await screenshot("22-invitation");

    await invitation.$('[data-testid="invitation-join"]').click();
    const status = await alice.ctl(["musig2", "status", sessionId, "--wait", "60"]);
    expect(status.phase).toBe("done");
    const signature = session(sessionId).$('[data-testid="session-signature"]');
    await signature.waitForDisplayed({ timeout: 30000 });
    await expect(signature).toHaveText(status.signature);
    await expect(invitation).not.toExist();
  });
});
