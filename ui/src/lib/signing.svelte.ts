// Live state of MuSig2 signing: invitations waiting for a decision, the
// sessions, and the announcement of a new invitation (shown in any view).
import { commands, events, type InvitationView, type SessionView, type SigningChanged } from "./bindings";
import { unwrap } from "./api";

export const signing = $state({
  invitations: [] as InvitationView[],
  sessions: [] as SessionView[],
  loaded: false,
  error: null as string | null,
  /** The newest invitation not yet looked at, for the announcement. */
  announced: null as InvitationView | null,
});

let fetching = false;
let fetchAgain = false;

/**
 * Fetches invitations and sessions again. A call during a fetch schedules one
 * more after it, so an answer that predates the latest event never stays.
 */
export async function refreshSigning(): Promise<void> {
  if (fetching) {
    fetchAgain = true;
    return;
  }
  fetching = true;
  try {
    do {
      fetchAgain = false;
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
    } while (fetchAgain);
  } finally {
    signing.loaded = true;
    fetching = false;
  }
}

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
function notifyDesktop(invitation: InvitationView): void {
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
