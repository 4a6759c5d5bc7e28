// The sandbox store against stand-ins for the sandbox commands (the Tauri IPC
// the app provides does not exist under vitest).
import { beforeEach, describe, expect, it, vi } from "vitest";
import type { SandboxView } from "./bindings";

const commands = vi.hoisted(() => ({ sandboxStatus: vi.fn(), startSandbox: vi.fn(), stopSandbox: vi.fn() }));
vi.mock("./bindings", () => ({ commands }));

import { loadSandbox, sandbox, SANDBOX_MAX, startSandbox, stopSandbox } from "./sandbox.svelte";

const ok = (data: SandboxView) => Promise.resolve({ status: "ok" as const, data });
const refused = (message: string) =>
  Promise.resolve({ status: "error" as const, error: { code: "unavailable" as const, message, hint: null } });
const running = (n: number): SandboxView => ({ running: n, peer_ids: Array.from({ length: n }, (_, i) => `12D3KooWs${i}`) });

beforeEach(() => {
  vi.resetAllMocks();
  sandbox.view = null;
  sandbox.error = null;
  sandbox.busy = false;
  commands.startSandbox.mockImplementation((n: number) => ok(running(n)));
  commands.stopSandbox.mockImplementation(() => ok(running(0)));
});

describe("sandbox store", () => {
  it("asks for a whole number of peers within the limit", async () => {
    await startSandbox(3.7);
    expect(commands.startSandbox).toHaveBeenLastCalledWith(3);
    await startSandbox(500);
    expect(commands.startSandbox).toHaveBeenLastCalledWith(SANDBOX_MAX);
    await startSandbox(0);
    expect(commands.startSandbox).toHaveBeenLastCalledWith(1);
    expect(sandbox.view?.running).toBe(1);
  });

  it("an empty count is refused without starting anything", async () => {
    await startSandbox(null);
    await startSandbox(Number.NaN);
    expect(commands.startSandbox).not.toHaveBeenCalled();
    expect(sandbox.error).toBe(`Enter how many peers to start, from 1 to ${SANDBOX_MAX}.`);
  });

  it("a failed start says why and keeps what runs; a stop that works clears it", async () => {
    sandbox.view = running(2);
    commands.startSandbox.mockImplementation(() => refused("the node is not running"));
    await startSandbox(4);
    expect(sandbox.error).toBe("the node is not running");
    expect(sandbox.view?.running).toBe(2);
    expect(sandbox.busy).toBe(false);

    await stopSandbox();
    expect(sandbox.error).toBeNull();
    expect(sandbox.view?.running).toBe(0);
  });

  it("is busy while peers start", async () => {
    let answer!: (v: Awaited<ReturnType<typeof ok>>) => void;
    commands.startSandbox.mockImplementation(() => new Promise((r) => (answer = r)));
    const start = startSandbox(2);
    expect(sandbox.busy).toBe(true);
    answer({ status: "ok", data: running(2) });
    await start;
    expect(sandbox.busy).toBe(false);
    expect(sandbox.view?.peer_ids).toHaveLength(2);
  });

  it("shows what the sandbox runs, and why it could not be read", async () => {
    commands.sandboxStatus.mockImplementation(() => ok(running(5)));
    await loadSandbox();
    expect(sandbox.view?.running).toBe(5);
    commands.sandboxStatus.mockImplementation(() => refused("the app is shutting down"));
    await loadSandbox();
    expect(sandbox.error).toBe("the app is shutting down");
    expect(sandbox.view?.running).toBe(5);
  });
});
