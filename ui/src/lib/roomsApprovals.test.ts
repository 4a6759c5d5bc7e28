// Answering a run that waits for this owner's approval, against stand-ins
// for the rooms commands (the Tauri IPC the app provides does not exist
// under vitest).
import { beforeEach, describe, expect, it, vi } from "vitest";
import type { PendingApproval } from "./bindings";

const commands = vi.hoisted(() => ({
  roomsList: vi.fn(),
  roomsApprovals: vi.fn(),
  roomsOwnTools: vi.fn(),
  roomsAgents: vi.fn(),
  roomsTasks: vi.fn(),
  roomsApprove: vi.fn(),
  roomsDecline: vi.fn(),
}));
vi.mock("./bindings", () => ({ commands, events: {} }));

import { answerApproval, approving, rooms } from "./rooms.svelte";

const ok = <T>(data: T) => Promise.resolve({ status: "ok" as const, data });

const waiting: PendingApproval = {
  task_id: "t1",
  room_id: "r".repeat(64),
  room_name: "lab",
  proposer: "12D3KooWProposer",
  skill: "mcp.files.write_file",
  server: "files",
  tool: "write_file",
  input: '{"path":"/tmp/x"}',
  attempt: 1,
  proposed_at_ms: 1,
};

beforeEach(() => {
  vi.resetAllMocks();
  rooms.approvals = [waiting];
  rooms.announced = waiting;
  rooms.selected = null;
  approving.error = null;
  // The node's lists after an answer: nothing waits any more.
  commands.roomsList.mockImplementation(() => ok([]));
  commands.roomsApprovals.mockImplementation(() => ok([]));
  commands.roomsOwnTools.mockImplementation(() => ok([]));
});

describe("answering an approval", () => {
  it("declines through the decline command only, and the prompt and its banner go", async () => {
    commands.roomsDecline.mockImplementation(() => ok(null));
    const answered = answerApproval("t1", "decline");
    expect(approving.busy).toBe("t1");
    expect(approving.answer).toBe("decline");
    await answered;
    expect(commands.roomsDecline).toHaveBeenCalledWith("t1");
    expect(commands.roomsApprove).not.toHaveBeenCalled();
    expect(rooms.announced).toBeNull();
    expect(rooms.approvals).toEqual([]);
    expect(approving.busy).toBeNull();
    expect(approving.answer).toBeNull();
    expect(approving.error).toBeNull();
  });

  it("approves through the approve command only", async () => {
    commands.roomsApprove.mockImplementation(() => ok(null));
    await answerApproval("t1", "approve");
    expect(commands.roomsApprove).toHaveBeenCalledWith("t1");
    expect(commands.roomsDecline).not.toHaveBeenCalled();
  });

  it("says why an answer was refused and keeps the prompt", async () => {
    commands.roomsDecline.mockImplementation(() =>
      Promise.resolve({
        status: "error" as const,
        error: { code: "invalid_input" as const, message: "task t1 waits for no approval here", hint: "refresh the list" },
      }),
    );
    await answerApproval("t1", "decline");
    expect(approving.error).toEqual({ message: "task t1 waits for no approval here", hint: "refresh the list" });
    expect(rooms.approvals).toEqual([waiting]);
    expect(approving.busy).toBeNull();
  });
});
