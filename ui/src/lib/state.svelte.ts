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
  type StatsView,
} from "./bindings";
import { unwrap } from "./api";

/** Samples kept for the charts: two minutes at one per second. */
export const HISTORY = 120;

export interface History {
  t: number[];
  bytesIn: number[];
  bytesOut: number[];
  messages: number[];
}

export type View = "health" | "peers" | "sessions" | "identity" | "settings" | "logs";

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

function pushSample(atMs: number, bytesIn: number, bytesOut: number, messages: number): void {
  const keep = (a: number[], v: number) => {
    const next = a.length >= HISTORY ? a.slice(a.length - HISTORY + 1) : a.slice();
    next.push(v);
    return next;
  };
  history = {
    t: keep(history.t, atMs / 1000),
    bytesIn: keep(history.bytesIn, bytesIn),
    bytesOut: keep(history.bytesOut, bytesOut),
    messages: keep(history.messages, messages),
  };
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
  await events.peerChanged.listen((e) => applyPeerChange(e.payload));
  await events.statsSampled.listen((e) => {
    app.stats = e.payload.stats;
    app.statsError = null;
    const r = e.payload.rate;
    pushSample(r.at_ms ?? Date.now(), r.bytes_in_per_sec ?? 0, r.bytes_out_per_sec ?? 0, r.messages_per_sec ?? 0);
  });
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
