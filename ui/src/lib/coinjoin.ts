// CoinJoin requests as people read them: the phases in order, each run's
// part of the timeline and who it waits for, exclusions, and the checks the
// join form makes before asking the node.
import type { Problem } from "./api";
import type { Availability, ExcludedOutpoint, RequestPhase, RequestStatus, TimelineEntry } from "./bindings";

/** The phases of one run, in order, as its timeline shows them. */
export const STEPS: readonly { phase: RequestPhase; label: string }[] = [
  { phase: "key_exchange", label: "Key exchange" },
  { phase: "ciphertexts", label: "Ciphertexts" },
  { phase: "slot_reservation", label: "Slot reservation" },
  { phase: "dc_net", label: "DC-net" },
  { phase: "acceptance", label: "Acceptance" },
  { phase: "signatures", label: "Signatures" },
  { phase: "broadcasting", label: "Broadcast" },
];

const PHASE_LABEL: Record<RequestPhase, string> = {
  waiting: "Waiting for the next round",
  key_exchange: "Exchanging keys",
  ciphertexts: "Exchanging ciphertexts",
  slot_reservation: "Reserving slots",
  dc_net: "Mixing outputs (DC-net)",
  acceptance: "Checking the transaction",
  signatures: "Signing",
  blame: "Finding who disrupted the run",
  broadcasting: "Broadcasting",
  done: "Mixed",
  failed: "Failed",
  cancelled: "Cancelled",
};

/** Where a request stands, in words. */
export function phaseLabel(phase: RequestPhase): string {
  return PHASE_LABEL[phase] ?? phase;
}

/** The badge colour of a phase. */
export function phaseTone(phase: RequestPhase): "ok" | "bad" | "accent" | "warn" {
  if (phase === "done") return "ok";
  if (phase === "failed" || phase === "blame") return "bad";
  return phase === "cancelled" ? "warn" : "accent";
}

/** Whether a request can still change (and be cancelled). */
export function isOpen(phase: RequestPhase): boolean {
  return phase !== "done" && phase !== "failed" && phase !== "cancelled";
}

/** One run of a session, as the timeline recorded it. */
export interface Run {
  /** Its number in the session, from 0. */
  run: number;
  /** Participants of the run. */
  peers: number;
  entries: TimelineEntry[];
}

/**
 * The timeline grouped by run, oldest first. Waiting spells are left out; a
 * run ends at a wait or a final phase (the next session starts again at run
 * 0), and a phase recorded again (its holdouts changed) keeps its newest entry.
 */
export function runs(timeline: TimelineEntry[]): Run[] {
  const out: Run[] = [];
  let ended = true;
  for (const entry of timeline) {
    if (entry.phase === "waiting") {
      ended = true;
      continue;
    }
    let last = out[out.length - 1];
    if (!last || ended || last.run !== entry.run) {
      last = { run: entry.run, peers: entry.peers, entries: [] };
      out.push(last);
    }
    ended = !isOpen(entry.phase);
    const previous = last.entries[last.entries.length - 1];
    if (previous?.phase === entry.phase) last.entries[last.entries.length - 1] = entry;
    else last.entries.push(entry);
    last.peers = entry.peers;
  }
  return out;
}

/** How one step shows in a run: reached and passed, where it is now, blamed from, or not reached. */
export function stepState(run: Run, phase: RequestPhase, current: RequestPhase, latest: boolean): "done" | "current" | "failed" | "todo" {
  const at = run.entries.findIndex((e) => e.phase === phase);
  if (at < 0) return current === "done" && latest ? "done" : "todo";
  const next = run.entries[at + 1];
  if (!next) return latest && current === phase ? "current" : latest && current === "done" ? "done" : "failed";
  return next.phase === "blame" ? "failed" : "done";
}

/** The requests (hex ids) the run still waits for, from its newest entry. */
export function outstanding(request: Pick<RequestStatus, "timeline" | "phase">): string[] {
  if (!isOpen(request.phase) || request.phase === "waiting") return [];
  return request.timeline[request.timeline.length - 1]?.holdouts ?? [];
}

/** An exclusion in one line: the coin, why, and until when. */
export function describeExclusion(e: ExcludedOutpoint): string {
  return `${e.outpoint}: ${e.reason} (excluded until ${new Date(e.until_ms).toLocaleString()})`;
}

/** What the availability means for the tab: null when joins are taken. */
export function unavailable(a: Availability | null): { title: string; detail: string } | null {
  if (!a) return { title: "CoinJoin is starting", detail: "Connecting to Bitcoin Core…" };
  switch (a.state) {
    case "running":
      return null;
    case "starting":
      return { title: `CoinJoin is starting on ${a.network}`, detail: "Connecting to Bitcoin Core and opening the wallet…" };
    case "failed":
      return { title: `CoinJoin could not start on ${a.network}`, detail: `${a.reason} (it is tried again).` };
    case "off":
      return { title: "CoinJoin is off", detail: a.reason };
  }
}

/** The ladder of fee-rate steps, sat/vB: peers at one step mix together. */
export const FEE_LADDER = [1, 2, 5, 10, 20, 50, 100] as const;

const OUTPOINT = /^[0-9a-fA-F]{64}:\d{1,10}$/;

/** The coins in the form's text: TXID:VOUT, separated by commas, spaces or lines. */
export function parseCoins(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((c) => c.trim())
    .filter((c) => c.length > 0);
}

/** What the join form holds. */
export interface JoinDraft {
  coinsText: string;
  denomination: string;
  feeRate: string;
  maxFee: string;
}

/** What the node is asked, as `coinjoin_join` takes it. */
export interface JoinRequest {
  inputs: string[];
  denomination: number;
  feeRate: number;
  maxFee: number | null;
}

function whole(text: string): number | null {
  const t = text.trim();
  if (!/^\d+$/.test(t)) return null;
  const n = Number(t);
  return Number.isSafeInteger(n) && n <= 0xffff_ffff ? n : null;
}

/** The request a draft makes, or the first reason it cannot be sent. */
export function joinRequest(draft: JoinDraft): { request: JoinRequest } | { problem: Problem } {
  const inputs = parseCoins(draft.coinsText);
  const bad = inputs.find((c) => !OUTPOINT.test(c));
  if (inputs.length === 0 || bad !== undefined) {
    return {
      problem: {
        message: bad !== undefined ? `Not a coin: ${bad}` : "Name at least one coin to mix.",
        hint: "A coin is TXID:VOUT (64 hex characters, a colon, the output's index), paid to this wallet's address.",
      },
    };
  }
  if (new Set(inputs.map((c) => c.toLowerCase())).size !== inputs.length) {
    return { problem: { message: "A coin is named twice.", hint: null } };
  }
  const denomination = whole(draft.denomination);
  if (!denomination) return { problem: { message: "The denomination is a whole number of sats above 0.", hint: null } };
  const feeRate = whole(draft.feeRate);
  if (!feeRate || feeRate > FEE_LADDER[FEE_LADDER.length - 1]) {
    return { problem: { message: `The fee rate is a whole number of sat/vB from 1 to ${FEE_LADDER[FEE_LADDER.length - 1]}.`, hint: null } };
  }
  let maxFee: number | null = null;
  if (draft.maxFee.trim()) {
    maxFee = whole(draft.maxFee);
    if (maxFee === null) return { problem: { message: "The maximum fee is a whole number of sats.", hint: "Leave it empty for no maximum." } };
  }
  return { request: { inputs, denomination, feeRate, maxFee } };
}
