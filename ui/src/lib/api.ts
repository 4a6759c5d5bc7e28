// Command results: the generated bindings return {status, data | error};
// the views want a value or an exception that carries the hint.
import type { CommandError } from "./bindings";

export type Result<T, E> = { status: "ok"; data: T } | { status: "error"; error: E };

export class UiError extends Error {
  readonly code: string;
  readonly hint: string | null;
  constructor(err: CommandError) {
    super(err.message);
    this.code = err.code;
    this.hint = err.hint;
  }
}

export async function unwrap<T>(call: Promise<Result<T, CommandError>>): Promise<T> {
  const r = await call;
  if (r.status === "ok") return r.data;
  throw new UiError(r.error);
}

/** What went wrong, for people: the cause, and what to do about it if known. */
export type Problem = { message: string; hint: string | null };

/** A message for people from anything thrown. */
export function describe(e: unknown): Problem {
  if (e instanceof UiError) return { message: e.message, hint: e.hint };
  if (e instanceof Error) return { message: e.message, hint: null };
  return { message: String(e), hint: null };
}
