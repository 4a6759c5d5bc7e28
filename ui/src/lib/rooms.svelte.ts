// Live state of the agent-task rooms: the rooms this node is in, the
// selected room's agents and tasks, and what a person does with them:
// create, join, propose, cancel. Every `RoomsChanged` event fetches again.
import { commands, events, type AgentSummary, type RoomSummary, type TaskSummary } from "./bindings";
import { describe, unwrap, type Problem } from "./api";
import { coalesced } from "./refresh";
import { proposeRequest, roomIdProblem, type ProposeDraft } from "./rooms";

export const rooms = $state({
  list: [] as RoomSummary[],
  selected: null as string | null,
  agents: [] as AgentSummary[],
  tasks: [] as TaskSummary[],
  loaded: false,
  error: null as Problem | null,
});

/**
 * Fetches the rooms and the selected room's agents and tasks. A call
 * during a fetch schedules one more after it, so an answer that predates
 * the latest event never stays.
 */
export const refreshRooms = coalesced(
  async (again) => {
    try {
      rooms.list = await unwrap(commands.roomsList());
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

export async function joinRoom(roomId: string): Promise<boolean> {
  entering.error = roomIdProblem(roomId);
  if (entering.error) return false;
  entering.busy = true;
  try {
    const joined = await unwrap(commands.roomsJoin(roomId.trim()));
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
