// The app's live state, shared by every view: node status, stats with their
// history for the charts, and the connected peers. Filled by the node's
// events; fetched in full at start and whenever the backend asks to resync.
import {
  commands,
  events,
  type AppInfo,
  type IdentityView,
  type NodeStatus,
  type PeerChanged,
  type PeerInfo,
  type StatsSampled,
  type StatsView,
} from "./bindings";
import { unwrap } from "./api";
import { appendSamples, type History } from "./history";

export { HISTORY, type History } from "./history";

export type View = "health" | "peers" | "sessions" | "rooms" | "identity" | "settings" | "logs";

export const app = $state({
  status: null as NodeStatus | null,
  info: null as AppInfo | null,
  identity: null as IdentityView | null,
  stats: null as StatsView | null,
  statsError: null as string | null,
  bootstrapCount: null as number | null,
  mdns: null as boolean | null,
  peersLoaded: false,
  peersError: null as string | null,
  /** True while the Peers benchmark feeds synthetic peers. */
  synthetic: false,
});

// Large, often replaced values: raw state (no deep proxies), replaced whole.
let peerMap = $state.raw(new Map<string, PeerInfo>());
let history = $state.raw<History>({ t: [], bytesIn: [], bytesOut: [], messages: [] });

export const live = {
  get peers(): Map<string, PeerInfo> {
    return peerMap;
  },
  get history(): History {
    return history;
  },
};

export function setPeers(list: PeerInfo[]): void {
  peerMap = new Map(list.map((p) => [p.peer_id, p]));
}

/** Changes that arrive while a full list is being fetched, replayed on it. */
let inFlight: PeerChanged[] | null = null;

function applyPeerChange(change: PeerChanged): void {
  if (app.synthetic) return;
  inFlight?.push(change);
  switch (change.kind) {
    case "connected":
    case "updated": {
      const next = new Map(peerMap);
      next.set(change.peer.peer_id, change.peer);
      peerMap = next;
      break;
    }
    case "disconnected": {
      if (!peerMap.has(change.peer_id)) return;
      const next = new Map(peerMap);
      next.delete(change.peer_id);
      peerMap = next;
      break;
    }
    case "resync":
      void refreshPeers();
      break;
  }
}

export async function refreshPeers(): Promise<void> {
  if (app.synthetic) return;
  const changes: PeerChanged[] = [];
  inFlight = changes;
  try {
    const list = await unwrap(commands.peers());
    inFlight = null;
    // The list may predate events that arrived meanwhile (a first RTT, a
    // disconnect): apply them again on top of it.
    setPeers(list);
    for (const c of changes) if (c.kind !== "resync") applyPeerChange(c);
    app.peersError = null;
  } catch (e) {
    app.peersError = e instanceof Error ? e.message : String(e);
  } finally {
    if (inFlight === changes) inFlight = null;
    app.peersLoaded = true;
  }
}

export async function refreshStats(): Promise<void> {
  try {
    app.stats = await unwrap(commands.stats());
    app.statsError = null;
  } catch (e) {
    app.statsError = e instanceof Error ? e.message : String(e);
  }
}

export async function refreshSettingsSummary(): Promise<void> {
  try {
    const view = await unwrap(commands.settings());
    app.bootstrapCount = view.saved.bootstrap.length;
    app.mdns = view.saved.mdns;
  } catch {
    app.bootstrapCount = null;
  }
}

// Events are applied once per animation frame: a burst (many peers at once,
// a resync) costs one redraw, and while the window is hidden (no frames)
// they wait, one per peer, for it to be shown.
let pendingPeers = new Map<string, PeerChanged>();
let pendingResync = false;
let pendingSamples: StatsSampled[] = [];
let frameRequested = false;
/** The window was hidden since the last sample: the charts show a gap. */
let missedSamples = false;

function applyPending(): void {
  frameRequested = false;
  const peers = pendingPeers;
  const samples = pendingSamples;
  const resync = pendingResync;
  pendingPeers = new Map();
  pendingSamples = [];
  pendingResync = false;
  for (const change of peers.values()) applyPeerChange(change);
  if (resync) applyPeerChange({ kind: "resync" });
  if (samples.length) {
    app.stats = samples[samples.length - 1].stats;
    app.statsError = null;
    history = appendSamples(history, samples, missedSamples);
    missedSamples = false;
  }
}

function scheduleApply(): void {
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(applyPending);
}

function queuePeerChange(change: PeerChanged): void {
  if (change.kind === "resync") pendingResync = true;
  else pendingPeers.set(change.kind === "disconnected" ? change.peer_id : change.peer.peer_id, change);
  scheduleApply();
}

/**
 * Tells the app whether the window can be seen (it stops sending samples to
 * a hidden one; a visible one gets the next sample at once) and, when it is
 * shown again, fetches what it missed.
 */
function followVisibility(): void {
  const report = () => {
    const visible = document.visibilityState === "visible";
    void commands.windowVisibility(visible);
    if (!visible) {
      missedSamples = true;
    } else if (app.status?.state === "running") {
      void refreshStats();
    }
  };
  document.addEventListener("visibilitychange", report);
  // A window that loads (or reloads) wants its first sample now.
  void commands.windowVisibility(document.visibilityState === "visible");
}

let started = false;

/** Subscribes to the node's events and loads the first snapshot. */
export async function startLive(): Promise<void> {
  if (started) return;
  started = true;
  await events.nodeStatus.listen((e) => {
    const previous = app.status?.state;
    app.status = e.payload;
    // A restored backup restarts the node under another PeerId.
    if (app.identity && app.identity.peer_id !== e.payload.peer_id) {
      void commands.identity().then((identity) => (app.identity = identity));
    }
    if (e.payload.state === "running" && previous !== "running") {
      void refreshStats();
      void refreshPeers();
      void refreshSettingsSummary();
    }
    if (e.payload.state !== "running") {
      app.peersLoaded = e.payload.state === "failed";
    }
  });
  await events.peerChanged.listen((e) => queuePeerChange(e.payload));
  await events.statsSampled.listen((e) => {
    pendingSamples.push(e.payload);
    scheduleApply();
  });
  followVisibility();
  const [status, info, identity] = await Promise.all([
    commands.nodeStatus(),
    commands.appInfo(),
    commands.identity(),
  ]);
  app.status = status;
  app.info = info;
  app.identity = identity;
  void refreshSettingsSummary();
  if (status.state === "running") {
    await Promise.all([refreshStats(), refreshPeers()]);
  } else if (status.state === "failed") {
    app.peersLoaded = true;
  }
}
