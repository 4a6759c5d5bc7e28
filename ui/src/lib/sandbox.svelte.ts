// The local sandbox: peers the app starts on 127.0.0.1 and connects to, so a
// person can try everything alone. They stop when the app closes.
import { commands, type SandboxView } from "./bindings";
import { describe, unwrap } from "./api";

/** Most sandbox peers one start asks for (the backend's limit too). */
export const SANDBOX_MAX = 32;

export const sandbox = $state({
  view: null as SandboxView | null,
  /** True while peers start or stop. */
  busy: false,
  /** Why the last fetch, start or stop failed. */
  error: null as string | null,
});

/** Fetches what the sandbox runs. */
export async function loadSandbox(): Promise<void> {
  try {
    sandbox.view = await unwrap(commands.sandboxStatus());
    sandbox.error = null;
  } catch (e) {
    sandbox.error = describe(e).message;
  }
}

/** Starts `count` more sandbox peers (a whole number from 1 to SANDBOX_MAX). */
export async function startSandbox(count: number | null): Promise<void> {
  if (count === null || !Number.isFinite(count)) {
    sandbox.error = `Enter how many peers to start, from 1 to ${SANDBOX_MAX}.`;
    return;
  }
  await run(() => commands.startSandbox(Math.max(1, Math.min(SANDBOX_MAX, Math.floor(count)))));
}

/** Stops every sandbox peer. */
export function stopSandbox(): Promise<void> {
  return run(() => commands.stopSandbox());
}

async function run(call: () => ReturnType<typeof commands.sandboxStatus>): Promise<void> {
  sandbox.busy = true;
  sandbox.error = null;
  try {
    sandbox.view = await unwrap(call());
  } catch (e) {
    sandbox.error = describe(e).message;
  } finally {
    sandbox.busy = false;
  }
}
