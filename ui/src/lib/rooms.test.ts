import { describe, expect, it } from "vitest";
import type { AgentSummary, TaskSummary } from "./bindings";
import { cancellable, MAX_WINDOW_MS, proposeRequest, roomIdProblem, skillsOffered, stateLabel, stateTone, type ProposeDraft } from "./rooms";

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
