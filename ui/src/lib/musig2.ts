// MuSig2 sessions as people read them: the phases in order, what a session
// signs, and the checks a new session's form makes before asking the node.
import type { Problem } from "./api";
import type { SessionStatus, Signing } from "./bindings";
import { shortId } from "./format";

/** The phases a session goes through, in order, as its timeline shows them. */
export const STEPS: readonly { phase: string; label: string }[] = [
  { phase: "join", label: "Join" },
  { phase: "nonces", label: "Nonces" },
  { phase: "partial_signatures", label: "Partial signatures" },
  { phase: "aggregation", label: "Aggregation" },
  { phase: "done", label: "Signed" },
];

/** Where a session stands, in words; unknown phases show as the node names them. */
export function phaseLabel(phase: string): string {
  return PHASE_LABEL[phase] ?? phase;
}

const PHASE_LABEL: Record<string, string> = {
  invitation: "Invited",
  join: "Waiting for signers to join",
  nonces: "Exchanging nonces",
  partial_signatures: "Exchanging partial signatures",
  aggregation: "Aggregating",
  done: "Signed",
  failed: "Failed",
  aborted: "Aborted",
};

/** The badge colour of a phase. */
export function phaseTone(phase: string): "ok" | "bad" | "accent" {
  if (phase === "done") return "ok";
  return phase === "failed" || phase === "aborted" ? "bad" : "accent";
}

/** How one step of the timeline shows for a session. */
export function stepState(session: Pick<SessionStatus, "timeline" | "phase" | "failure">, phase: string): "done" | "current" | "todo" | "failed" {
  const last = session.phase;
  if (last === phase) return "current";
  if (last === "done" || session.timeline.some((t) => t.phase === phase)) return "done";
  if ((last === "failed" || last === "aborted") && session.failure?.phase === phase) return "failed";
  return "todo";
}

/** What a session signs, in one line. */
export function describeSigning(s: Signing): string {
  if (s.kind === "message") {
    const text = messageText(s.message);
    return text !== null ? `Message “${text}”` : `Message (${s.message.length / 2} bytes)`;
  }
  const { txid, inputs, fee_sat } = s.summary;
  return `Transaction ${shortId(txid)} · ${inputs} input(s) · fee ${fee_sat} sat`;
}

/**
 * A message (hex) as text, when its bytes are UTF-8 without control
 * characters other than newlines; otherwise null (show the hex).
 */
export function messageText(hex: string): string | null {
  if (!/^([0-9a-fA-F]{2})*$/.test(hex)) return null;
  const bytes = Uint8Array.from(hex.match(/../g) ?? [], (b) => parseInt(b, 16));
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return null;
  }
  return /\p{Cc}/u.test(text.replaceAll("\n", "")) ? null : text;
}

/** Whole seconds until `expiresAtMs` (never below zero; unknown is zero). */
export function secondsLeft(expiresAtMs: number | null, nowMs: number): number {
  return Math.max(0, Math.round(((expiresAtMs ?? nowMs) - nowMs) / 1000));
}

const PUBKEY = /^0[23][0-9a-fA-F]{64}$/;

/** The signer keys in the form's text: one per line or comma-separated. */
export function parseSigners(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((k) => k.trim())
    .filter((k) => k.length > 0);
}

/** The entries that are not compressed secp256k1 public keys. */
export function invalidSigners(signers: string[]): string[] {
  return signers.filter((k) => !PUBKEY.test(k));
}

/** The form's signer text with `pubkey` added once. */
export function withSigner(text: string, pubkey: string): string {
  const signers = parseSigners(text);
  return signers.includes(pubkey) ? text : [...signers, pubkey].join("\n");
}

/** What the new session form holds. */
export interface SessionDraft {
  signersText: string;
  mode: "message" | "psbt";
  messageText: string;
  messageIsHex: boolean;
  psbtPath: string;
}

/** What the node is asked to sign, as `signing_create` takes it. */
export interface SessionRequest {
  signers: string[];
  messageHex: string | null;
  psbtPath: string | null;
}

/** The request a draft makes, or the first reason it cannot be sent. */
export function sessionRequest(draft: SessionDraft): { request: SessionRequest } | { problem: Problem } {
  const signers = parseSigners(draft.signersText);
  const bad = invalidSigners(signers);
  if (signers.length === 0 || bad.length > 0) {
    return {
      problem: {
        message: bad.length ? `Not a public key: ${bad[0]}` : "Name at least one signer key.",
        hint: "Signer keys are compressed secp256k1 public keys: 66 hex characters starting with 02 or 03.",
      },
    };
  }
  if (draft.mode === "psbt") return { request: { signers, messageHex: null, psbtPath: draft.psbtPath.trim() } };
  const messageHex = draft.messageIsHex ? draft.messageText.trim() : toHex(draft.messageText);
  if (!messageHex || (draft.messageIsHex && !/^([0-9a-fA-F]{2})+$/.test(messageHex))) {
    return { problem: { message: draft.messageIsHex ? "The message is not hex." : "Write the message to sign.", hint: null } };
  }
  return { request: { signers, messageHex, psbtPath: null } };
}

function toHex(text: string): string {
  return Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, "0")).join("");
}
