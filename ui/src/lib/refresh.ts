// One fetch of a view's state at a time, however many events ask for it.

/**
 * Wraps `fetch` so that it never runs twice at once: a call while it runs
 * makes it run once more afterwards (an answer that predates the latest
 * event never stays). `fetch` may ask for another round itself through
 * `again`; `settled` runs when a call's last round ended, even one that
 * threw.
 */
export function coalesced(
  fetch: (again: () => void) => Promise<void>,
  settled: () => void = () => {},
): () => Promise<void> {
  let fetching = false;
  let pending = false;
  const again = () => {
    pending = true;
  };
  return async () => {
    if (fetching) {
      pending = true;
      return;
    }
    fetching = true;
    try {
      do {
        pending = false;
        await fetch(again);
      } while (pending);
    } finally {
      settled();
      fetching = false;
    }
  };
}
