// The app the Debian package installed (tests/package/run.sh points
// CONCLAVE_APP at /usr/bin/conclave and runs it on its default profile): it
// starts, takes its keys from the keychain, shows its PeerId, and keeps its
// files in the user's folders, the ones the README says removal leaves.
import fs from "node:fs";
import path from "node:path";
import { byTestId, open, screenshot, waitOnline } from "../ui/support/app.mjs";

/** Executables of the running processes, read from /proc. */
function runningExecutables() {
  return fs
    .readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .map((pid) => {
      try {
        return fs.readlinkSync(`/proc/${pid}/exe`);
      } catch {
        return null; // gone, or not ours to read
      }
    })
    .filter(Boolean);
}

describe("Installed Conclave package", () => {
  it("runs the installed binary and shows its PeerId", async () => {
    expect(runningExecutables()).toContain(process.env.CONCLAVE_APP);
    await waitOnline();
    await open("identity");
    const peerId = byTestId("peer-id");
    await expect(peerId).toHaveText(/^12D3KooW[1-9A-HJ-NP-Za-km-z]{44}$/);
    await expect(byTestId("header-peer-id")).toHaveAttribute("title", await peerId.getText());
    await screenshot("package-identity");
  });

  it("keeps the default profile's files in the user's data and config folders", () => {
    const data = path.join(process.env.XDG_DATA_HOME, "conclave", "default");
    const config = path.join(process.env.XDG_CONFIG_HOME, "conclave", "default");
    expect(fs.readdirSync(path.join(data, "logs")).length).toBeGreaterThan(0);
    expect(fs.statSync(config).isDirectory()).toBe(true);
  });
});
