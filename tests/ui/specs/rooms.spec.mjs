// Agent-task rooms in the app: the app creates a room, a conclaved with a
// shell tool joins it (through conclavectl), the app sees the daemon's card
// with its skill, proposes a task for it, and sees the task completed by
// the daemon with its result and the verified mark of its record. The
// app's own profile has an MCP filesystem server whose write_file is
// destructive: the app lists it as exposed and asking approval, a task the
// daemon proposes for it waits for a click on the app's prompt, and runs
// after it; one declined never runs. An invite-only room of the app's: the daemon joins with the
// invitation the app saved to a file, and the app revokes it.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { $, browser, expect } from "@wdio/globals";
import { startDaemon } from "../support/daemon.mjs";
import { byTestId, open, reveal, screenshot, waitOnline } from "../support/app.mjs";
import { profileDir } from "../wdio.conf.mjs";

const SKILL = "shell.upper";
const WRITE = "mcp.files.write_file";
const READ = "mcp.files.read_text_file";
const TR = ["/usr/bin/tr", "/bin/tr"].find((p) => fs.existsSync(p));
const FILESYSTEM_SERVER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../mcp/node_modules/.bin/mcp-server-filesystem");
const task = (id) => $(`[data-testid="room-task"][data-task-id="${id}"]`);
const agentIn = (peerId) => $(`[data-testid="room-agent"][data-peer-id="${peerId}"]`);
const ownTool = (skill) => $(`[data-testid="own-tool"][data-skill="${skill}"]`);

describe("Rooms", () => {
  let agent;
  let roomId;
  let files;
  const configFile = path.join(profileDir, "config.toml");
  let configBefore;

  before(async () => {
    if (!fs.existsSync(FILESYSTEM_SERVER)) throw new Error(`missing ${FILESYSTEM_SERVER}: run scripts/setup.sh (npm ci in tests/mcp)`);
    // A shell tool: the task's text on stdin, upper-cased on stdout.
    agent = await startDaemon(["--signing-keys", "none"], {
      config: `[[shell]]\nname = "upper"\nargv = ["${TR}", "a-z", "A-Z"]\nidempotent = true\n`,
    });
    // The app's own tools: a filesystem server limited to a fresh folder,
    // its destructive write_file waiting for approval.
    files = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "conclave-files-")));
    configBefore = fs.readFileSync(configFile, "utf8");
    fs.appendFileSync(
      configFile,
      [
        "",
        "[[mcp]]",
        'name = "files"',
        `command = "${FILESYSTEM_SERVER}"`,
        `args = ["${files}"]`,
        'expose = ["write_file", "read_text_file", "no_such_tool"]',
        'approve = "destructive"',
        "",
      ].join("\n"),
    );
    await browser.reloadSession();
  });

  after(async () => {
    // The specs after this one run the app without these tools again.
    if (configBefore !== undefined) fs.writeFileSync(configFile, configBefore);
    await agent?.stop();
    if (files) fs.rmSync(files, { recursive: true, force: true });
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
    roomId = await detail.getAttribute("data-room-id");
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

  it("lists this profile's own tools: the exposed ones, the one asking approval, and the one its server lacks", async () => {
    await open("rooms");
    const source = $('[data-testid="own-tool-source"][data-name="files"]');
    await reveal(source);
    // The server starts with the app; its tools show once it listed them.
    await browser.waitUntil(async () => (await ownTool(WRITE).getAttribute("data-exposed")) === "true", {
      timeout: 60000,
      timeoutMsg: "write_file was not listed as exposed",
    });
    await expect(source.$('[data-testid="own-tool-source-state"]')).toHaveText(/^running \(pid \d+\)$/);
    // MCP annotations: write_file is destructive, read_text_file read-only.
    await expect(ownTool(WRITE)).toHaveAttribute("data-needs-approval", "true");
    await expect(ownTool(READ)).toHaveAttribute("data-exposed", "true");
    await expect(ownTool(READ)).toHaveAttribute("data-needs-approval", "false");
    const missing = ownTool("mcp.files.no_such_tool");
    await expect(missing).toHaveAttribute("data-exposed", "false");
    await expect(missing).toHaveText(expect.stringContaining("does not list a tool"));
    await reveal(source);
    await screenshot("41-rooms-own-tools");
  });

  it("asks before a destructive tool runs for a daemon's task, names what it would do, and runs it once approved", async () => {
    expect(roomId).toMatch(/^[0-9a-f]{64}$/);
    // The daemon must see the app's card with the skill before it proposes.
    await browser.waitUntil(
      async () => {
        const agents = await agent.ctl(["rooms", "agents", roomId]);
        return agents.some((a) => a.card.skills.some((s) => s.id === WRITE));
      },
      { timeout: 60000, interval: 500, timeoutMsg: "the daemon never saw the app's write_file skill" },
    );
    await open("peers");
    const target = path.join(files, "approved.txt");
    const args = { path: target, content: "written after a click" };
    const { task_id: taskId } = await agent.ctl([
      "rooms", "propose", roomId, "--skill", WRITE, "--input", JSON.stringify(args), "--window-ms", "2000", "--lease-ms", "120000",
    ]);

    // In another view: the badge and the announcement.
    const banner = byTestId("approval-announcement");
    await banner.waitForDisplayed({ timeout: 30000, timeoutMsg: "no approval announcement" });
    await expect(banner).toHaveText(expect.stringContaining("write_file"));
    await expect(banner).toHaveText(expect.stringContaining("ui lab"));
    await expect(byTestId("nav-rooms-badge")).toHaveText("1");
    await banner.$("a").click();
    await byTestId("rooms-view").waitForDisplayed();

    const prompt = $(`[data-testid="room-approval"][data-task-id="${taskId}"]`);
    await prompt.waitForDisplayed();
    await expect(prompt.$('[data-testid="approval-room"]')).toHaveText("ui lab");
    await expect(prompt.$('[data-testid="approval-proposer"]')).toHaveAttribute("data-peer-id", agent.peerId);
    await expect(prompt.$('[data-testid="approval-tool"]')).toHaveText("write_file");
    expect(JSON.parse(await prompt.$('[data-testid="approval-input"]').getText())).toEqual(args);
    // Nothing ran yet: the file is not there, and the task waits.
    expect(fs.existsSync(target)).toBe(false);
    await expect(task(taskId)).toHaveAttribute("data-state", "TASK_STATE_AUTH_REQUIRED");
    await reveal(prompt);
    await screenshot("42-rooms-approval");

    await (await reveal(prompt.$('[data-testid="approval-approve"]'))).click();
    await browser.waitUntil(async () => (await task(taskId).getAttribute("data-state")) === "TASK_STATE_COMPLETED", {
      timeout: 60000,
      interval: 250,
      timeoutMsg: `task ${taskId} did not complete after the approval`,
    });
    expect(fs.readFileSync(target, "utf8")).toBe(args.content);
    await expect(prompt).not.toExist();
    await expect(byTestId("rooms-approvals")).not.toExist();
    await expect(byTestId("nav-rooms-badge")).not.toExist();
    await expect(task(taskId).$('[data-testid="task-verified"]')).toBeDisplayed();
    // The proposer verifies the record, with the app as its executor.
    const theirs = await agent.ctl(["rooms", "task", taskId, "--wait", "30"]);
    expect(theirs.state).toBe("TASK_STATE_COMPLETED");
    expect(theirs.verified).toBe(true);
    expect(theirs.executor).toBe(await byTestId("header-peer-id").getAttribute("title"));
  });

  it("declines a destructive run: the tool never runs and the proposer's task moves on", async () => {
    await open("rooms");
    const target = path.join(files, "declined.txt");
    const args = { path: target, content: "never written" };
    const { task_id: taskId } = await agent.ctl([
      "rooms", "propose", roomId, "--skill", WRITE, "--input", JSON.stringify(args), "--window-ms", "2000", "--lease-ms", "120000",
    ]);
    const prompt = $(`[data-testid="room-approval"][data-task-id="${taskId}"]`);
    await prompt.waitForDisplayed({ timeout: 30000, timeoutMsg: "no approval prompt for the second write" });
    await (await reveal(prompt.$('[data-testid="approval-decline"]'))).click();
    await expect(prompt).not.toExist();
    await expect(byTestId("nav-rooms-badge")).not.toExist();
    // The app was the only bidder: declined, the task has nobody left and fails.
    const theirs = await agent.ctl(["rooms", "task", taskId, "--wait", "30"]);
    expect(theirs.state).toBe("TASK_STATE_FAILED");
    expect(theirs.verified).toBe(true);
    expect(theirs.log.some((l) => l.report === "declined")).toBe(true);
    expect(fs.existsSync(target)).toBe(false);
    await expect(byTestId("rooms-approve-error")).not.toExist();
  });

  it("invites a daemon into an invite-only room with a saved invitation, and revokes it", async () => {
    await reveal(byTestId("rooms-create-name"));
    await byTestId("rooms-create-name").setValue("inner circle");
    await byTestId("rooms-create-invite-only").click();
    await byTestId("rooms-create-button").click();
    await browser.waitUntil(async () => (await byTestId("room-name").getText()) === "inner circle", {
      timeout: 20000,
      timeoutMsg: "the invite-only room was not created",
    });
    const inner = await byTestId("room-detail").getAttribute("data-room-id");
    expect(inner).not.toBe(roomId);

    await (await reveal(byTestId("rooms-invite-button"))).click();
    await expect(byTestId("rooms-invite-error")).toHaveText(expect.stringContaining("peer id"));
    await byTestId("rooms-invite-peer").setValue(agent.peerId);
    await byTestId("rooms-invite-button").click();
    const made = byTestId("rooms-invitation");
    await made.waitForDisplayed({ timeout: 20000 });
    await expect(made).toHaveAttribute("data-peer-id", agent.peerId);
    const text = await byTestId("rooms-invitation-text").getValue();
    expect(text).toMatch(/^([0-9a-f]{2})+$/);

    const file = path.join(agent.dir, "invitation.bin");
    await (await reveal(byTestId("rooms-invitation-path"))).setValue(file);
    await byTestId("rooms-invitation-save").click();
    await expect(byTestId("rooms-invitation-saved")).toHaveText(expect.stringContaining(file));
    expect(fs.readFileSync(file).toString("hex")).toBe(text);
    // A second save to the same file is refused: nothing is overwritten.
    await byTestId("rooms-invitation-save").click();
    await expect(byTestId("rooms-invite-error")).toHaveText(expect.stringContaining(file));

    const joined = await agent.ctl(["rooms", "join", inner, "--token", file]);
    expect(joined.name).toBe("inner circle");
    expect(joined.roles.execute).toBe(true);
    await agentIn(agent.peerId).waitForExist({ timeout: 60000, timeoutMsg: "the invited daemon's card did not appear" });
    await reveal(agentIn(agent.peerId));
    await screenshot("43-rooms-invited");

    await (await reveal(agentIn(agent.peerId).$('[data-testid="agent-revoke"]'))).click();
    await agentIn(agent.peerId).waitForExist({ reverse: true, timeout: 20000, timeoutMsg: "the revoked member stayed" });
    await expect(byTestId("rooms-revoke-error")).not.toExist();
    // The daemon hears of it over the room's topic: it may do nothing there now.
    await browser.waitUntil(
      async () => {
        const list = await agent.ctl(["rooms", "list"]);
        const room = list.find((r) => r.room_id === inner);
        return room && !room.roles.propose && !room.roles.execute;
      },
      { timeout: 30000, interval: 500, timeoutMsg: "the daemon kept its roles after the revocation" },
    );
  });
});
