// The Rooms view's pure logic: checking what a person typed (room ids, a
// proposal's skill, JSON input and bid window, an invitation) and the words
// and tones of task states, tool sources and approvals. No calls to the
// app here, so it is all tested by vitest.
import type { AgentSummary, PendingApproval, RoomInfo, TaskSummary, ToolSource } from "./bindings";
import type { Problem } from "./api";

/** Longest bid window the app accepts (ms); the Rust side checks it too. */
export const MAX_WINDOW_MS = 60_000;

/** What the propose form holds, as typed. */
export type ProposeDraft = { skill: string; inputText: string; windowText: string };

/** A proposal ready for `roomsPropose`. */
export type ProposeRequest = { skill: string; inputJson: string; windowMs: number | null };

const problem = (message: string, hint: string | null = null): { problem: Problem } => ({
  problem: { message, hint },
});

/**
 * Checks a proposal: a skill, an input that is a JSON object (the tool's
 * arguments) or a JSON string (text), and an optional bid window in ms.
 */
export function proposeRequest(draft: ProposeDraft): { request: ProposeRequest } | { problem: Problem } {
  const skill = draft.skill.trim();
  if (!skill) return problem("Name the skill to ask for.", "Pick one of the agents' skills listed above.");
  const input = draft.inputText.trim();
  if (!input) return problem("Give the task an input.", 'Write a JSON object like {"message": "hi"}, or a quoted string.');
  let parsed: unknown;
  try {
    parsed = JSON.parse(input);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    return problem(`The input is not JSON (${why}).`, 'Write a JSON object like {"message": "hi"}, or put text in double quotes.');
  }
  const isObject = typeof parsed === "object" && parsed !== null && !Array.isArray(parsed);
  if (!isObject && typeof parsed !== "string") {
    return problem("The input must be a JSON object (the tool's arguments) or a quoted string.");
  }
  const windowText = draft.windowText.trim();
  let windowMs: number | null = null;
  if (windowText) {
    windowMs = Number(windowText);
    if (!/^\d+$/.test(windowText) || windowMs < 1 || windowMs > MAX_WINDOW_MS) {
      return problem(`The bid window must be a whole number of milliseconds from 1 to ${MAX_WINDOW_MS}.`, "Leave it empty for the default.");
    }
  }
  return { request: { skill, inputJson: JSON.stringify(parsed), windowMs } };
}

/** Whether a pasted room id can be one: 64 hex digits (BLAKE3 of its descriptor). */
export function roomIdProblem(text: string): Problem | null {
  const id = text.trim();
  if (!id) return { message: "Paste the room's id.", hint: "Its owner finds it under the room's name." };
  if (!/^[0-9a-fA-F]{64}$/.test(id)) {
    return { message: "A room id is 64 hexadecimal digits.", hint: "Copy it whole from the room's owner." };
  }
  return null;
}

/** The A2A states (`TASK_STATE_…`) in words. */
const STATE_LABELS: Record<string, string> = {
  TASK_STATE_SUBMITTED: "Submitted",
  TASK_STATE_WORKING: "Working",
  TASK_STATE_INPUT_REQUIRED: "Input required",
  TASK_STATE_AUTH_REQUIRED: "Awaiting approval",
  TASK_STATE_COMPLETED: "Completed",
  TASK_STATE_FAILED: "Failed",
  TASK_STATE_CANCELED: "Canceled",
  TASK_STATE_REJECTED: "Rejected",
};

/** A task's state for people, with its finer phase while it is not final. */
export function stateLabel(task: Pick<TaskSummary, "state" | "phase" | "finished">): string {
  const state = STATE_LABELS[task.state] ?? task.state.replace(/^TASK_STATE_/, "").toLowerCase();
  if (task.finished || !task.phase) return state;
  return `${state} · ${task.phase.replace(/_/g, " ")}`;
}

/** How a state is coloured: done well, ended badly, or still going. */
export function stateTone(task: Pick<TaskSummary, "state" | "finished">): "ok" | "bad" | "accent" {
  if (!task.finished) return "accent";
  return task.state === "TASK_STATE_COMPLETED" ? "ok" : "bad";
}

/** Whether a person may still cancel the task here: ours and not final. */
export function cancellable(task: Pick<TaskSummary, "proposer" | "finished">, ourPeerId: string | null): boolean {
  return !task.finished && ourPeerId !== null && task.proposer === ourPeerId;
}

/** Every skill the room's agents offer, each once, sorted: the propose form's choices. */
export function skillsOffered(agents: AgentSummary[]): string[] {
  return [...new Set(agents.flatMap((a) => a.skills.map((s) => s.id)))].sort();
}

/** What the invite form holds, as typed. */
export type InviteDraft = { peerText: string; propose: boolean; execute: boolean; observe: boolean; daysText: string };

/** An invitation ready for `roomsInvite`. */
export type InviteRequest = {
  peerId: string;
  roles: { propose: boolean; execute: boolean; observe: boolean };
  validDays: number | null;
};

/** Longest an invitation from the app may be valid (days); the Rust side checks it too. */
export const MAX_INVITATION_DAYS = 365;

/**
 * Checks an invitation: a peer id (base58, as its Identity view shows it),
 * at least one role, and an optional validity in whole days.
 */
export function inviteRequest(draft: InviteDraft): { request: InviteRequest } | { problem: Problem } {
  const peerId = draft.peerText.trim();
  if (!peerId) return problem("Paste the peer id of the peer to invite.", "It is shown on that peer's Identity view, or by conclavectl id.");
  if (!/^[1-9A-HJ-NP-Za-km-z]{40,100}$/.test(peerId)) {
    return problem("That is not a peer id.", "A peer id is base58 text like 12D3KooW…; copy it whole.");
  }
  const { propose, execute, observe } = draft;
  if (!propose && !execute && !observe) return problem("Give the invitation at least one role.", "Tick propose, execute or observe.");
  const daysText = draft.daysText.trim();
  let validDays: number | null = null;
  if (daysText) {
    validDays = Number(daysText);
    if (!/^\d+$/.test(daysText) || validDays < 1 || validDays > MAX_INVITATION_DAYS) {
      return problem(`The validity must be a whole number of days from 1 to ${MAX_INVITATION_DAYS}.`, "Leave it empty for 30 days.");
    }
  }
  return { request: { peerId, roles: { propose, execute, observe }, validDays } };
}

/** A room's owner may invite (invite-only rooms) and revoke members. */
export function ownedBy(room: Pick<RoomInfo, "owner">, ourPeerId: string | null): boolean {
  return ourPeerId !== null && room.owner === ourPeerId;
}

/**
 * The approval to announce: the newest one not yet announced, or null.
 * `seen` holds the task ids already announced (or looked at).
 */
export function approvalToAnnounce(list: PendingApproval[], seen: ReadonlySet<string>): PendingApproval | null {
  const fresh = list.filter((a) => !seen.has(a.task_id));
  if (fresh.length === 0) return null;
  return fresh.reduce((a, b) => (b.proposed_at_ms > a.proposed_at_ms ? b : a));
}

/** A configured tool source's state for people. */
export function sourceState(source: Pick<ToolSource, "kind" | "pid" | "generation">): { label: string; tone: "ok" | "bad" | "accent" } {
  if (source.kind !== "mcp") return { label: "runs per task", tone: "ok" };
  if (source.pid !== null) {
    const restarts = source.generation > 1 ? `, restarted ${source.generation - 1}×` : "";
    return { label: `running (pid ${source.pid}${restarts})`, tone: "ok" };
  }
  return source.generation === 0 ? { label: "starting", tone: "accent" } : { label: "not running", tone: "bad" };
}
