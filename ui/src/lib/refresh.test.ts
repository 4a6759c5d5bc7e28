import { describe, expect, it } from "vitest";
import { coalesced } from "./refresh";

/** A fetch that waits until released, counting its rounds. */
function gated() {
  let release: () => void = () => {};
  const state = { rounds: 0, running: 0, most: 0 };
  const fetch = async () => {
    state.rounds += 1;
    state.running += 1;
    state.most = Math.max(state.most, state.running);
    await new Promise<void>((resolve) => (release = resolve));
    state.running -= 1;
  };
  return { state, fetch, release: () => release() };
}

describe("coalesced", () => {
  it("runs once more after calls made during a fetch, never two at once", async () => {
    const g = gated();
    let settled = 0;
    const refresh = coalesced(g.fetch, () => (settled += 1));
    const first = refresh();
    void refresh();
    void refresh();
    g.release();
    await Promise.resolve();
    await new Promise((r) => setTimeout(r, 0));
    g.release();
    await first;
    expect(g.state.rounds).toBe(2);
    expect(g.state.most).toBe(1);
    expect(settled).toBe(1);
  });

  it("runs another round when the fetch asks for one", async () => {
    let rounds = 0;
    const refresh = coalesced(async (again) => {
      rounds += 1;
      if (rounds === 1) again();
    });
    await refresh();
    expect(rounds).toBe(2);
  });

  it("settles after a fetch that throws, and fetches again on the next call", async () => {
    let settled = 0;
    let rounds = 0;
    const refresh = coalesced(
      async () => {
        rounds += 1;
        throw new Error("down");
      },
      () => (settled += 1),
    );
    await expect(refresh()).rejects.toThrow("down");
    await expect(refresh()).rejects.toThrow("down");
    expect(settled).toBe(2);
    expect(rounds).toBe(2);
  });
});
