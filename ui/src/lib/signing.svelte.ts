// Live state of MuSig2 signing: invitations waiting for a decision, the
// sessions, and the announcement of a new invitation (shown in any view);
// and what a person does with them: create a session, join or decline an
// invitation, save a finished session's PSBT or transaction.
import {
  commands,
  events,
  type ExportKind,
  type InvitationInfo,
  type SessionStatus,
  type SigningChanged,
} from "./bindings";
import { describe, unwrap, type Problem } from "./api";
import { coalesced } from "./refresh";
import { sessionRequest, type SessionDraft } from "./musig2";

export const signing = $state({
  invitations: [] as InvitationInfo[],
  sessions: [] as SessionStatus[],
  loaded: false,
  error: null as string | null,
  /** The newest invitation not yet looked at, for the announcement. */
  announced: null as InvitationInfo | null,
});

/**
 * Fetches invitations and sessions again. A call during a fetch schedules one
 * more after it, so an answer that predates the latest event never stays.
 */
export const refreshSigning = coalesced(
  async () => {
    try {
      const [invitations, sessions] = await Promise.all([
        unwrap(commands.signingInvitations()),
        unwrap(commands.signingSessions()),
      ]);
      signing.invitations = invitations;
      signing.sessions = sessions;
      signing.error = null;
    } catch (e) {
      signing.error = e instanceof Error ? e.message : String(e);
    }
  },
  () => {
    signing.loaded = true;
  },
);

function apply(change: SigningChanged): void {
  switch (change.kind) {
    case "invitation":
      signing.invitations = [
        change.invitation,
        ...signing.invitations.filter((i) => i.session_id !== change.invitation.session_id),
      ];
      signing.announced = change.invitation;
      notifyDesktop(change.invitation);
      void refreshSigning();
      break;
    case "phase": {
      const s = signing.sessions.find((x) => x.session_id === change.session_id);
      if (s) {
        s.phase = change.phase;
        s.holdouts = change.holdouts;
      }
      void refreshSigning();
      break;
    }
    case "finished":
      signing.sessions = [
        change.session,
        ...signing.sessions.filter((x) => x.session_id !== change.session.session_id),
      ];
      signing.invitations = signing.invitations.filter((i) => i.session_id !== change.session.session_id);
      // A fetch in flight may predate this: fetch once more after it.
      void refreshSigning();
      break;
    case "resync":
      void refreshSigning();
      break;
  }
}

/** A system notification where the web view offers them (and the person allowed it). */
function notifyDesktop(invitation: InvitationInfo): void {
  if (typeof Notification === "undefined" || document.hasFocus()) return;
  const what = invitation.signing.kind === "message" ? "a message" : "a transaction";
  const show = () => new Notification("Conclave: signing invitation", { body: `You are asked to sign ${what}.` });
  try {
    if (Notification.permission === "granted") show();
    else if (Notification.permission !== "denied") void Notification.requestPermission().then((p) => p === "granted" && show());
  } catch {
    // No notification service on this desktop: the in-app announcement remains.
  }
}

export async function startSigningLive(): Promise<void> {
  await events.signingChanged.listen((e) => apply(e.payload));
  await refreshSigning();
}

export function dismissAnnouncement(): void {
  signing.announced = null;
}

/** The answer to an invitation under way, and why the last one failed. */
export const decision = $state({
  /** The session being joined or declined. */
  busy: null as string | null,
  error: null as Problem | null,
});

/** Joins an invitation: this profile's keys sign what it names. */
export function joinInvitation(sessionId: string): Promise<void> {
  return decide(sessionId, () => commands.signingJoin(sessionId));
}

/** Declines an invitation; the coordinator learns it. */
export function declineInvitation(sessionId: string): Promise<void> {
  return decide(sessionId, () => commands.signingDecline(sessionId, "declined in the app"));
}

async function decide(sessionId: string, call: () => ReturnType<typeof commands.signingJoin>): Promise<void> {
  decision.busy = sessionId;
  decision.error = null;
  try {
    await unwrap(call());
    dismissAnnouncement();
    await refreshSigning();
  } catch (e) {
    decision.error = describe(e);
  } finally {
    decision.busy = null;
  }
}

/** The new session form's outcome. */
export const creation = $state({
  busy: false,
  error: null as Problem | null,
  /** The id of the session the last submit created. */
  created: null as string | null,
});

/** Checks a draft, then creates the session and invites its signers; true once created. */
export async function createSession(draft: SessionDraft): Promise<boolean> {
  creation.error = null;
  creation.created = null;
  const checked = sessionRequest(draft);
  if ("problem" in checked) {
    creation.error = checked.problem;
    return false;
  }
  const { signers, messageHex, psbtPath } = checked.request;
  creation.busy = true;
  try {
    creation.created = await unwrap(commands.signingCreate(signers, messageHex, psbtPath));
    await refreshSigning();
    return true;
  } catch (e) {
    creation.error = describe(e);
    return false;
  } finally {
    creation.busy = false;
  }
}

/** Where each export of a finished session went, by `exportKey`. */
export const exportsSaved = $state<Record<string, { ok: boolean; text: string }>>({});

/** The key of one export of one session. */
export function exportKey(sessionId: string, kind: ExportKind): string {
  return `${sessionId}:${kind}`;
}

/** Saves a finished PSBT session's signed PSBT or transaction to `path`. */
export async function exportSession(sessionId: string, kind: ExportKind, path: string): Promise<void> {
  const key = exportKey(sessionId, kind);
  try {
    const written = await unwrap(commands.signingExport(sessionId, kind, path));
    exportsSaved[key] = { ok: true, text: `Saved to ${written}` };
  } catch (e) {
    const p = describe(e);
    exportsSaved[key] = { ok: false, text: p.hint ? `${p.message} (${p.hint})` : p.message };
  }
}

/** Forgets the outcome lines of an earlier visit of the Sessions view. */
export function clearSigningOutcomes(): void {
  decision.error = null;
  creation.error = null;
  creation.created = null;
  for (const key of Object.keys(exportsSaved)) delete exportsSaved[key];
}
