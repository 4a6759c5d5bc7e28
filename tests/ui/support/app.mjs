// Small steps the specs share.
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { $, browser } from "@wdio/globals";
import { screenshotDir } from "../wdio.conf.mjs";

const run = promisify(execFile);

export const byTestId = (id) => $(`[data-testid="${id}"]`);

export async function open(view) {
  await byTestId(`nav-${view}`).click();
  await byTestId(`${view}-view`).waitForDisplayed();
}

/**
 * Saves what the display shows (the Xvfb screen is the window's size) as
 * screenshots/NAME.png. Taken from X11 rather than through WebKitWebDriver,
 * whose snapshot request sometimes never answers under Xvfb.
 */
export async function screenshot(name) {
  // Park the pointer on the sidebar so no tooltip covers the view, and let
  // the view paint the state the test just checked.
  await browser.action("pointer").move({ x: 4, y: 4 }).perform().catch(() => {});
  await browser.execute(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  await run("import", ["-window", "root", path.join(screenshotDir, `${name}.png`)], { timeout: 20000 });
}

/** Waits until the node reports it is online. */
export async function waitOnline() {
  await browser.waitUntil(async () => (await byTestId("node-state").getText()).includes("Online"), {
    timeout: 30000,
    timeoutMsg: "the node did not come online",
  });
}

export const row = (peerId) => $(`[data-testid="peer-row"][data-peer-id="${peerId}"]`);
export const graphNode = (peerId) => $(`[data-testid="topology-peer"][data-peer-id="${peerId}"]`);

/**
 * Scrolls an element to the middle of its scrolling view. The app scrolls
 * inside its main pane, which WebKitWebDriver does not always do by itself
 * before a click.
 */
export async function reveal(selector) {
  const el = await selector;
  await el.waitForExist();
  await browser.execute((e) => e.scrollIntoView({ block: "center", inline: "center" }), el);
  return el;
}
