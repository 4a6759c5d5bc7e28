// Who may connect: the node's allow and deny lists and private mode. Every
// change answers with the whole new policy, so what is shown is always the
// node's own; a refused change leaves it as it was and says why.
import { commands, type CommandError, type PolicyView } from "./bindings";
import { describe, unwrap, type Result } from "./api";

export const policy = $state({
  view: null as PolicyView | null,
  /** True while the policy is fetched. */
  loading: false,
  /** True while a change made in the policy card is under way. */
  busy: false,
  /** Why the last fetch or change from the policy card failed, with what to do. */
  error: null as string | null,
});

// Answers can arrive out of order (a fetch started before a change may end
// after it): only an answer to a newer request than the one shown is applied.
let issued = 0;
let shown = 0;
let fetches = 0;

function apply(ticket: number, view: PolicyView): void {
  if (ticket < shown) return;
  shown = ticket;
  policy.view = view;
}

function readable(e: unknown): string {
  const { message, hint } = describe(e);
  return hint ? `${message}. ${hint}` : message;
}

/** Fetches the policy; a failure leaves the last one shown. */
export async function loadPolicy(): Promise<void> {
  const ticket = ++issued;
  fetches++;
  policy.loading = true;
  policy.error = null;
  try {
    apply(ticket, await unwrap(commands.policy()));
  } catch (e) {
    // A change answered meanwhile is newer than anything this fetch missed.
    if (ticket > shown) policy.error = readable(e);
  } finally {
    policy.loading = --fetches > 0;
  }
}

/** Runs one change from the policy card; true if the node took it. */
async function change(call: () => Promise<Result<PolicyView, CommandError>>): Promise<boolean> {
  const ticket = ++issued;
  policy.busy = true;
  policy.error = null;
  try {
    apply(ticket, await unwrap(call()));
    return true;
  } catch (e) {
    policy.error = readable(e);
    return false;
  } finally {
    policy.busy = false;
  }
}

/** Puts a peer on the allow list (and off the deny list). */
export function allowPeer(peerId: string): Promise<boolean> {
  return change(() => commands.allowPeer(peerId));
}

/** Takes a peer off whichever list it is on: the undo of allow and deny. */
export function unlistPeer(peerId: string): Promise<boolean> {
  return change(() => commands.unlistPeer(peerId));
}

/** Turns private mode (only allowed peers may connect) on or off. */
export function setPrivateMode(enabled: boolean): Promise<boolean> {
  return change(() => commands.setPrivateMode(enabled));
}

/** Allows the peer ID a person typed; an empty field is refused here. */
export async function allowTypedPeer(typed: string): Promise<boolean> {
  const peerId = typed.trim();
  if (!peerId) {
    policy.error = "Enter the peer ID to allow (it starts with 12D3KooW).";
    return false;
  }
  return allowPeer(peerId);
}

/**
 * Puts a peer on the deny list; the node closes its connections. Used from
 * the peer's row, which shows the failure itself, so this throws it and
 * leaves the policy card as it was.
 */
export async function denyPeer(peerId: string): Promise<void> {
  const ticket = ++issued;
  apply(ticket, await unwrap(commands.denyPeer(peerId)));
}
