// Live state of CoinJoin: whether the service runs (and if not, why), our
// requests with their timelines, and what a person does with them: look up
// what a join costs, join, cancel, get an address to fund coins to.
import { commands, events, type Availability, type CoinJoinChanged, type JoinQuote, type RequestStatus } from "./bindings";
import { describe, unwrap, type Problem } from "./api";
import { coalesced } from "./refresh";
import { joinRequest, type JoinDraft } from "./coinjoin";

export const coinjoin = $state({
  availability: null as Availability | null,
  requests: [] as RequestStatus[],
  loaded: false,
  error: null as string | null,
});

/**
 * Fetches the availability and, while the service runs, the requests. A call
 * during a fetch schedules one more after it, so an answer that predates the
 * latest event never stays.
 */
export const refreshCoinJoin = coalesced(
  async () => {
    try {
      coinjoin.availability = await unwrap(commands.coinjoinAvailability());
      if (coinjoin.availability.state === "running") {
        coinjoin.requests = await unwrap(commands.coinjoinRequests());
      }
      coinjoin.error = null;
    } catch (e) {
      coinjoin.error = e instanceof Error ? e.message : String(e);
    }
  },
  () => {
    coinjoin.loaded = true;
  },
);

function apply(change: CoinJoinChanged): void {
  switch (change.kind) {
    case "request": {
      const at = coinjoin.requests.findIndex((r) => r.request_id === change.status.request_id);
      if (at >= 0) coinjoin.requests[at] = change.status;
      else coinjoin.requests = [change.status, ...coinjoin.requests];
      break;
    }
    case "availability":
      coinjoin.availability = change.availability;
      break;
    case "resync":
      void refreshCoinJoin();
      break;
  }
}

export async function startCoinJoinLive(): Promise<void> {
  await events.coinJoinChanged.listen((e) => apply(e.payload));
  await refreshCoinJoin();
}

/** The join form's state: the quote of what it would cost, and the outcome. */
export const joining = $state({
  quoting: false,
  quote: null as JoinQuote | null,
  busy: false,
  error: null as Problem | null,
  /** The id of the request the last submit made. */
  joined: null as string | null,
});

/** Checks a draft and asks the node what it would cost (coin amounts, fee, change). */
export async function quoteJoin(draft: JoinDraft): Promise<void> {
  joining.error = null;
  joining.quote = null;
  const checked = joinRequest(draft);
  if ("problem" in checked) {
    joining.error = checked.problem;
    return;
  }
  const { inputs, denomination, feeRate } = checked.request;
  joining.quoting = true;
  try {
    joining.quote = await unwrap(commands.coinjoinQuote(inputs, denomination, feeRate));
  } catch (e) {
    joining.error = describe(e);
  } finally {
    joining.quoting = false;
  }
}

/** Joins with the draft; its request then retries every epoch until done or cancelled. */
export async function join(draft: JoinDraft): Promise<boolean> {
  joining.error = null;
  joining.joined = null;
  const checked = joinRequest(draft);
  if ("problem" in checked) {
    joining.error = checked.problem;
    return false;
  }
  const { inputs, denomination, feeRate, maxFee } = checked.request;
  joining.busy = true;
  try {
    joining.joined = await unwrap(commands.coinjoinJoin(inputs, denomination, feeRate, maxFee));
    joining.quote = null;
    await refreshCoinJoin();
    return true;
  } catch (e) {
    joining.error = describe(e);
    return false;
  } finally {
    joining.busy = false;
  }
}

/** Why the last cancel failed, by request id. */
export const cancelling = $state({ busy: null as string | null, error: null as Problem | null });

export async function cancel(requestId: string): Promise<void> {
  cancelling.busy = requestId;
  cancelling.error = null;
  try {
    await unwrap(commands.coinjoinCancel(requestId));
    await refreshCoinJoin();
  } catch (e) {
    cancelling.error = describe(e);
  } finally {
    cancelling.busy = null;
  }
}

/** The last address handed out to fund coins, or why there is none. */
export const funding = $state({ address: null as string | null, error: null as Problem | null });

export async function newAddress(): Promise<void> {
  funding.error = null;
  try {
    funding.address = await unwrap(commands.coinjoinAddress());
  } catch (e) {
    funding.error = describe(e);
  }
}
