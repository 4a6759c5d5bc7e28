// Agent-task rooms in the app: the app creates a room, a conclaved with a
// shell tool joins it (through conclavectl), the app sees the daemon's card
// with its skill, proposes a task for it, and sees the task completed by
// the daemon with its result and the verified mark of its record.
import fs from "node:fs";
import { $, browser, expect } from "@wdio/globals";
import { startDaemon } from "../support/daemon.mjs";
import { byTestId, open, reveal, screenshot, waitOnline } from "../support/app.mjs";

const SKILL = "shell.upper";
const TR = ["/usr/bin/tr", "/bin/tr"].find((p) => fs.existsSync(p));
const task = (id) => $(`[data-testid="room-task"][data-task-id="${id}"]`);

describe("Rooms", () => {
  let agent;

  before(async () => {
    // A shell tool: the task's text on stdin, upper-cased on stdout.
    agent = await startDaemon(["--signing-keys", "none"], {
      config: `[[shell]]\nname = "upper"\nargv = ["${TR}", "a-z", "A-Z"]\nidempotent = true\n`,
    });
  });

  after(async () => {
    await agent?.stop();
  });

  it("shows an empty state before any room", async () => {
    await waitOnline();
    await open("rooms");
    await expect(byTestId("rooms-list")).toHaveText(expect.stringContaining("No rooms yet"));
  });

  it("refuses a malformed room id with what to do", async () => {
    await byTestId("rooms-join-id").setValue("not-a-room");
    await byTestId("rooms-join-button").click();
    await expect(byTestId("rooms-enter-error")).toHaveText(expect.stringContaining("64 hexadecimal digits"));
  });

  it("creates a room, sees a daemon join with its skill, and has it run a task that verifies", async () => {
    await open("peers");
    await byTestId("connect-addr").setValue(agent.addr);
    await byTestId("connect-button").click();
    await byTestId("connect-ok").waitForDisplayed({ timeout: 30000 });

    await open("rooms");
    await byTestId("rooms-create-name").setValue("ui lab");
    await byTestId("rooms-create-button").click();
    const detail = byTestId("room-detail");
    await detail.waitForDisplayed({ timeout: 20000 });
    await expect(byTestId("room-name")).toHaveText("ui lab");
    const roomId = await detail.getAttribute("data-room-id");
    expect(roomId).toMatch(/^[0-9a-f]{64}$/);
    await expect(byTestId("room-tasks")).toHaveText(expect.stringContaining("No tasks in this room yet"));

    const joined = await agent.ctl(["rooms", "join", roomId]);
    expect(joined.name).toBe("ui lab");

    // The daemon's card reaches the app over the room's topic, skill and all.
    const skill = $(`[data-testid="room-agent"][data-peer-id="${agent.peerId}"] [data-testid="agent-skill"][data-skill="${SKILL}"]`);
    await skill.waitForExist({ timeout: 60000, timeoutMsg: "the daemon's card with its skill did not appear" });

    await reveal(byTestId("rooms-propose-skill"));
    await byTestId("rooms-propose-skill").setValue(SKILL);
    await byTestId("rooms-propose-input").setValue('"hello from the app"');
    await byTestId("rooms-propose-window").setValue("3000");
    await byTestId("rooms-propose-button").click();
    const proposed = byTestId("rooms-proposed");
    await browser.waitUntil(async () => (await proposed.isExisting()) || (await byTestId("rooms-propose-error").isExisting()), {
      timeout: 20000,
      timeoutMsg: "proposing neither succeeded nor failed",
    });
    if (await byTestId("rooms-propose-error").isExisting()) {
      throw new Error(`the app refused to propose: ${await byTestId("rooms-propose-error").getText()}`);
    }
    const taskId = await proposed.getAttribute("data-task-id");
    await task(taskId).waitForExist({ timeout: 10000 });

    // Live: the task's row moves to completed without a reload.
    await browser.waitUntil(async () => (await task(taskId).getAttribute("data-state")) === "TASK_STATE_COMPLETED", {
      timeout: 90000,
      interval: 250,
      timeoutMsg: `task ${taskId} did not complete in the app`,
    });
    const row = task(taskId);
    await expect(row.$('[data-testid="task-result"]')).toHaveText("HELLO FROM THE APP");
    await expect(row.$('[data-testid="task-verified"]')).toBeDisplayed();
    await expect(row.$('[data-testid="task-executor"]')).toHaveAttribute("data-peer-id", agent.peerId);
    await expect(row.$('[data-testid="task-state"]')).toHaveText("Completed");
    await expect(row.$('[data-testid="task-cancel"]')).not.toExist();

    // The daemon, a member, verifies the same record and result.
    const theirs = await agent.ctl(["rooms", "task", taskId, "--wait", "30"]);
    expect(theirs.state).toBe("TASK_STATE_COMPLETED");
    expect(theirs.verified).toBe(true);
    await reveal(row);
    await screenshot("40-rooms-task-completed");
  });

  it("says why input that is not JSON is refused, and cancels a task of ours while it takes bids", async () => {
    await reveal(byTestId("rooms-propose-input"));
    await byTestId("rooms-propose-skill").setValue("shell.nobody");
    await byTestId("rooms-propose-input").setValue("plain words");
    await byTestId("rooms-propose-window").setValue("60000");
    await byTestId("rooms-propose-button").click();
    await expect(byTestId("rooms-propose-error")).toHaveText(expect.stringContaining("not JSON"));

    await byTestId("rooms-propose-input").setValue('"nobody has this skill"');
    await byTestId("rooms-propose-button").click();
    const proposed = byTestId("rooms-proposed");
    await proposed.waitForExist({ timeout: 20000 });
    const taskId = await proposed.getAttribute("data-task-id");
    const cancel = task(taskId).$('[data-testid="task-cancel"]');
    await cancel.waitForExist({ timeout: 10000 });
    await expect(task(taskId)).toHaveAttribute("data-state", "TASK_STATE_SUBMITTED");
    await (await reveal(cancel)).click();
    await browser.waitUntil(async () => (await task(taskId).getAttribute("data-state")) === "TASK_STATE_CANCELED", {
      timeout: 20000,
      timeoutMsg: `task ${taskId} was not shown canceled`,
    });
    await expect(task(taskId).$('[data-testid="task-state"]')).toHaveText("Canceled");
    await expect(task(taskId).$('[data-testid="task-cancel"]')).not.toExist();
  });
});
