// Live state of the agent-task rooms: the rooms this node is in, the
// selected room's agents and tasks, the runs waiting for this owner's
// approval, this profile's own tools, and what a person does with them:
// create, join (with an invitation), propose, cancel, approve or decline
// a run, invite, revoke. Every `RoomsChanged` event fetches again.
import {
  commands,
  events,
  type AgentSummary,
  type PendingApproval,
  type RoomInfo,
  type TaskSummary,
  type ToolSource,
} from "./bindings";
import { describe, unwrap, type Problem } from "./api";
import { coalesced } from "./refresh";
import { approvalToAnnounce, inviteRequest, proposeRequest, roomIdProblem, type InviteDraft, type ProposeDraft } from "./rooms";

export const rooms = $state({
  list: [] as RoomInfo[],
  selected: null as string | null,
  agents: [] as AgentSummary[],
  tasks: [] as TaskSummary[],
  /** Runs of ours waiting for a click, in every room. */
  approvals: [] as PendingApproval[],
  /** The newest approval not yet announced, for the banner in other views. */
  announced: null as PendingApproval | null,
  /** This profile's MCP servers and shell commands with their tools. */
  tools: [] as ToolSource[],
  loaded: false,
  error: null as Problem | null,
});

/** Approvals already announced (or dismissed): each is announced once. */
const announcedIds = new Set<string>();

function takeApprovals(list: PendingApproval[]): void {
  rooms.approvals = list;
  // An approval that went (approved, or the task moved on) takes its banner along.
  if (rooms.announced && !list.some((a) => a.task_id === rooms.announced?.task_id)) rooms.announced = null;
  const fresh = approvalToAnnounce(list, announcedIds);
  if (fresh) {
    announcedIds.add(fresh.task_id);
    rooms.announced = fresh;
  }
}

export function dismissApprovalAnnouncement(): void {
  rooms.announced = null;
}

/**
 * Fetches the rooms and the selected room's agents and tasks. A call
 * during a fetch schedules one more after it, so an answer that predates
 * the latest event never stays.
 */
export const refreshRooms = coalesced(
  async (again) => {
    try {
      const [list, approvals, tools] = await Promise.all([
        unwrap(commands.roomsList()),
        unwrap(commands.roomsApprovals()),
        unwrap(commands.roomsOwnTools()),
      ]);
      rooms.list = list;
      takeApprovals(approvals);
      rooms.tools = tools;
      if (rooms.selected && !rooms.list.some((r) => r.room_id === rooms.selected)) rooms.selected = null;
      if (!rooms.selected && rooms.list.length > 0) rooms.selected = rooms.list[0].room_id;
      if (rooms.selected) {
        const room = rooms.selected;
        const [agents, tasks] = await Promise.all([unwrap(commands.roomsAgents(room)), unwrap(commands.roomsTasks(room))]);
        // The selection may have moved while we waited.
        if (rooms.selected === room) {
          rooms.agents = agents;
          rooms.tasks = tasks;
        } else {
          again();
        }
      } else {
        rooms.agents = [];
        rooms.tasks = [];
      }
      rooms.error = null;
    } catch (e) {
      rooms.error = describe(e);
    }
  },
  () => {
    rooms.loaded = true;
  },
);

export async function startRoomsLive(): Promise<void> {
  // Both kinds of change fetch everything: a room's lists are small.
  await events.roomsChanged.listen(() => void refreshRooms());
  await refreshRooms();
}

export function selectRoom(roomId: string): void {
  if (rooms.selected === roomId) return;
  rooms.selected = roomId;
  rooms.agents = [];
  rooms.tasks = [];
  void refreshRooms();
}

/** The create and join forms' state. */
export const entering = $state({ busy: false, error: null as Problem | null });

export async function createRoom(name: string, inviteOnly: boolean): Promise<boolean> {
  entering.error = null;
  if (!name.trim()) {
    entering.error = { message: "Give the room a name.", hint: null };
    return false;
  }
  entering.busy = true;
  try {
    rooms.selected = await unwrap(commands.roomsCreate(name.trim(), inviteOnly));
    await refreshRooms();
    return true;
  } catch (e) {
    entering.error = describe(e);
    return false;
  } finally {
    entering.busy = false;
  }
}

/** Joins a room by its id; an invite-only one with `invitation` (its text or its file's path). */
export async function joinRoom(roomId: string, invitation = ""): Promise<boolean> {
  entering.error = roomIdProblem(roomId);
  if (entering.error) return false;
  entering.busy = true;
  try {
    const joined = await unwrap(commands.roomsJoin(roomId.trim(), invitation.trim() || null));
    rooms.selected = joined.room_id;
    await refreshRooms();
    return true;
  } catch (e) {
    entering.error = describe(e);
    return false;
  } finally {
    entering.busy = false;
  }
}

/** The propose form's state: the id of the task the last submit made. */
export const proposing = $state({ busy: false, error: null as Problem | null, proposed: null as string | null });

export async function propose(draft: ProposeDraft): Promise<boolean> {
  proposing.error = null;
  proposing.proposed = null;
  const room = rooms.selected;
  if (!room) {
    proposing.error = { message: "Choose a room first.", hint: null };
    return false;
  }
  const checked = proposeRequest(draft);
  if ("problem" in checked) {
    proposing.error = checked.problem;
    return false;
  }
  const { skill, inputJson, windowMs } = checked.request;
  proposing.busy = true;
  try {
    proposing.proposed = await unwrap(commands.roomsPropose(room, skill, inputJson, windowMs));
    await refreshRooms();
    return true;
  } catch (e) {
    proposing.error = describe(e);
    return false;
  } finally {
    proposing.busy = false;
  }
}

/** The last cancel: which task is being cancelled, and why it failed. */
export const cancelling = $state({ busy: null as string | null, error: null as Problem | null });

export async function cancelTask(taskId: string): Promise<void> {
  cancelling.busy = taskId;
  cancelling.error = null;
  try {
    await unwrap(commands.roomsCancel(taskId));
    await refreshRooms();
  } catch (e) {
    cancelling.error = describe(e);
  } finally {
    cancelling.busy = null;
  }
}

/** The approve and decline buttons: which task is being answered, how, and why it failed. */
export const approving = $state({
  busy: null as string | null,
  answer: null as "approve" | "decline" | null,
  error: null as Problem | null,
});

/** Answers a run waiting for approval: run it, or decline it (the proposer awards the next bidder). */
export async function answerApproval(taskId: string, answer: "approve" | "decline"): Promise<void> {
  approving.busy = taskId;
  approving.answer = answer;
  approving.error = null;
  try {
    await unwrap(answer === "approve" ? commands.roomsApprove(taskId) : commands.roomsDecline(taskId));
    if (rooms.announced?.task_id === taskId) rooms.announced = null;
    await refreshRooms();
  } catch (e) {
    approving.error = describe(e);
  } finally {
    approving.busy = null;
    approving.answer = null;
  }
}

/** The invite form: the invitation it made (hex text), and where it was saved. */
export const inviting = $state({
  busy: false,
  error: null as Problem | null,
  made: null as { roomId: string; peerId: string; invitation: string } | null,
  saved: null as string | null,
});

export async function invitePeer(roomId: string, draft: InviteDraft): Promise<boolean> {
  inviting.error = null;
  inviting.made = null;
  inviting.saved = null;
  const checked = inviteRequest(draft);
  if ("problem" in checked) {
    inviting.error = checked.problem;
    return false;
  }
  const { peerId, roles, validDays } = checked.request;
  inviting.busy = true;
  try {
    const invitation = await unwrap(commands.roomsInvite(roomId, peerId, roles, validDays));
    inviting.made = { roomId, peerId, invitation };
    return true;
  } catch (e) {
    inviting.error = describe(e);
    return false;
  } finally {
    inviting.busy = false;
  }
}

/** Saves the invitation just made to a new file (the bytes conclavectl reads). */
export async function saveInvitation(path: string): Promise<void> {
  const made = inviting.made;
  inviting.error = null;
  inviting.saved = null;
  if (!made) return;
  if (!path.trim()) {
    inviting.error = { message: "Give the file a path.", hint: "For example /home/you/invitation.bin; an existing file is never overwritten." };
    return;
  }
  inviting.busy = true;
  try {
    inviting.saved = await unwrap(commands.roomsSaveInvitation(made.invitation, path.trim()));
  } catch (e) {
    inviting.error = describe(e);
  } finally {
    inviting.busy = false;
  }
}

/** The revoke buttons: which member is being revoked, and why it failed. */
export const revoking = $state({ busy: null as string | null, error: null as Problem | null });

export async function revokeMember(roomId: string, peerId: string): Promise<void> {
  revoking.busy = peerId;
  revoking.error = null;
  try {
    await unwrap(commands.roomsRevoke(roomId, peerId));
    await refreshRooms();
  } catch (e) {
    revoking.error = describe(e);
  } finally {
    revoking.busy = null;
  }
}
