import { describe, expect, it } from "vitest";
import type { AgentSummary, PendingApproval, TaskSummary } from "./bindings";
import {
  approvalToAnnounce,
  cancellable,
  inviteRequest,
  MAX_INVITATION_DAYS,
  MAX_WINDOW_MS,
  ownedBy,
  proposeRequest,
  roomIdProblem,
  skillsOffered,
  sourceState,
  stateLabel,
  stateTone,
  type InviteDraft,
  type ProposeDraft,
} from "./rooms";

const draft = (over: Partial<ProposeDraft> = {}): ProposeDraft => ({
  skill: "shell.greet",
  inputText: '{"message": "hi"}',
  windowText: "",
  ...over,
});

const task = (over: Partial<TaskSummary> = {}): TaskSummary => ({
  task_id: "ab".repeat(32),
  room_id: "cd".repeat(32),
  proposer: "12D3KooWUs",
  skill: "shell.greet",
  state: "TASK_STATE_WORKING",
  phase: "working",
  finished: false,
  executor: null,
  attempt: 0,
  bids: 0,
  result_text: null,
  result_blake3: null,
  verified: true,
  proposed_at_ms: 0,
  ...over,
});

describe("the propose form", () => {
  it("passes a skill, the input as compact JSON and the window on", () => {
    expect(proposeRequest(draft({ skill: " shell.greet ", inputText: ' { "message" : "hi" } ', windowText: "1500" }))).toEqual({
      request: { skill: "shell.greet", inputJson: '{"message":"hi"}', windowMs: 1500 },
    });
    expect(proposeRequest(draft({ inputText: '"just text"' }))).toMatchObject({ request: { inputJson: '"just text"', windowMs: null } });
  });

  it("refuses input that is not JSON, or JSON that is neither an object nor a string", () => {
    const notJson = proposeRequest(draft({ inputText: "hello" }));
    expect(notJson).toMatchObject({ problem: { message: expect.stringContaining("not JSON") } });
    expect("problem" in notJson && notJson.problem.hint).toContain("double quotes");
    for (const inputText of ["[1, 2]", "42", "null", "true"]) {
      expect(proposeRequest(draft({ inputText }))).toMatchObject({ problem: { message: expect.stringContaining("object") } });
    }
    expect(proposeRequest(draft({ inputText: "  " }))).toMatchObject({ problem: { message: "Give the task an input." } });
  });

  it("needs a skill and a window within bounds", () => {
    expect(proposeRequest(draft({ skill: " " }))).toMatchObject({ problem: { message: "Name the skill to ask for." } });
    for (const windowText of ["0", "-5", "1.5", "abc", String(MAX_WINDOW_MS + 1)]) {
      expect(proposeRequest(draft({ windowText }))).toMatchObject({ problem: { hint: "Leave it empty for the default." } });
    }
    expect(proposeRequest(draft({ windowText: String(MAX_WINDOW_MS) }))).toMatchObject({ request: { windowMs: MAX_WINDOW_MS } });
  });
});

describe("room ids", () => {
  it("accepts 64 hex digits, trimmed, and says what is wrong otherwise", () => {
    expect(roomIdProblem(` ${"aB".repeat(32)} `)).toBeNull();
    expect(roomIdProblem("")?.message).toBe("Paste the room's id.");
    expect(roomIdProblem("ab".repeat(31))?.message).toContain("64 hexadecimal digits");
    expect(roomIdProblem("zz".repeat(32))?.hint).toContain("Copy it whole");
  });
});

describe("task states", () => {
  it("names the state, with the phase while the task runs", () => {
    expect(stateLabel(task())).toBe("Working · working");
    expect(stateLabel(task({ state: "TASK_STATE_SUBMITTED", phase: "awaiting_approval" }))).toBe("Submitted · awaiting approval");
    expect(stateLabel(task({ state: "TASK_STATE_COMPLETED", phase: "completed", finished: true }))).toBe("Completed");
    expect(stateLabel(task({ state: "TASK_STATE_SOMETHING_NEW", phase: "", finished: true }))).toBe("something_new");
  });

  it("colours finished tasks by outcome and running ones as busy", () => {
    expect(stateTone(task())).toBe("accent");
    expect(stateTone(task({ state: "TASK_STATE_COMPLETED", finished: true }))).toBe("ok");
    expect(stateTone(task({ state: "TASK_STATE_CANCELED", finished: true }))).toBe("bad");
  });

  it("offers Cancel only on our own open tasks", () => {
    expect(cancellable(task(), "12D3KooWUs")).toBe(true);
    expect(cancellable(task(), "12D3KooWOther")).toBe(false);
    expect(cancellable(task(), null)).toBe(false);
    expect(cancellable(task({ finished: true }), "12D3KooWUs")).toBe(false);
  });
});

describe("skills offered", () => {
  it("lists each skill of the room's agents once, sorted", () => {
    const agent = (peer_id: string, ids: string[]): AgentSummary => ({
      peer_id,
      name: peer_id,
      description: "",
      skills: ids.map((id) => ({ id, name: id, description: "", reputation: null })),
    });
    expect(skillsOffered([agent("a", ["shell.b", "mcp.x.echo"]), agent("b", ["shell.b"])])).toEqual(["mcp.x.echo", "shell.b"]);
    expect(skillsOffered([])).toEqual([]);
  });
});

const PEER = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";

describe("the invite form", () => {
  const invite = (over: Partial<InviteDraft> = {}): InviteDraft => ({
    peerText: ` ${PEER} `,
    propose: true,
    execute: true,
    observe: false,
    daysText: "",
    ...over,
  });

  it("accepts a peer id with roles and the default validity", () => {
    expect(inviteRequest(invite())).toEqual({
      request: { peerId: PEER, roles: { propose: true, execute: true, observe: false }, validDays: null },
    });
    expect(inviteRequest(invite({ daysText: "7" }))).toMatchObject({ request: { validDays: 7 } });
  });

  it("refuses what would not make an invitation, saying why", () => {
    const problemOf = (d: InviteDraft) => {
      const r = inviteRequest(d);
      if (!("problem" in r)) throw new Error("accepted");
      return r.problem.message;
    };
    expect(problemOf(invite({ peerText: "" }))).toMatch(/peer id/);
    expect(problemOf(invite({ peerText: "not a peer" }))).toMatch(/not a peer id/);
    expect(problemOf(invite({ peerText: PEER.replace("W", "0") }))).toMatch(/not a peer id/);
    expect(problemOf(invite({ propose: false, execute: false }))).toMatch(/at least one role/);
    expect(problemOf(invite({ daysText: "0" }))).toMatch(/days/);
    expect(problemOf(invite({ daysText: String(MAX_INVITATION_DAYS + 1) }))).toMatch(/days/);
    expect(problemOf(invite({ daysText: "1.5" }))).toMatch(/whole number/);
  });

  it("is the owner's", () => {
    expect(ownedBy({ owner: PEER }, PEER)).toBe(true);
    expect(ownedBy({ owner: PEER }, "12D3KooWother")).toBe(false);
    expect(ownedBy({ owner: PEER }, null)).toBe(false);
  });
});

describe("approvals", () => {
  const approval = (task_id: string, proposed_at_ms: number): PendingApproval => ({
    task_id,
    room_id: "cd".repeat(32),
    room_name: "lab",
    proposer: PEER,
    skill: "mcp.files.write_file",
    server: "files",
    tool: "write_file",
    input: "{}",
    attempt: 1,
    proposed_at_ms,
  });

  it("announces the newest one not announced yet, and none when all were", () => {
    const list = [approval("a", 10), approval("b", 30), approval("c", 20)];
    expect(approvalToAnnounce(list, new Set())?.task_id).toBe("b");
    expect(approvalToAnnounce(list, new Set(["b"]))?.task_id).toBe("c");
    expect(approvalToAnnounce(list, new Set(["a", "b", "c"]))).toBeNull();
    expect(approvalToAnnounce([], new Set())).toBeNull();
  });
});

describe("tool sources", () => {
  it("say whether an MCP server runs, and how often it restarted", () => {
    expect(sourceState({ kind: "mcp", pid: 41, generation: 1 })).toEqual({ label: "running (pid 41)", tone: "ok" });
    expect(sourceState({ kind: "mcp", pid: 41, generation: 3 }).label).toBe("running (pid 41, restarted 2×)");
    expect(sourceState({ kind: "mcp", pid: null, generation: 0 })).toEqual({ label: "starting", tone: "accent" });
    expect(sourceState({ kind: "mcp", pid: null, generation: 2 }).tone).toBe("bad");
    expect(sourceState({ kind: "shell", pid: null, generation: 0 }).tone).toBe("ok");
  });
});
