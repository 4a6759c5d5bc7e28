// The window's security at run time, in the built app: a command outside
// its capability is refused, and the CSP blocks injected inline script,
// eval, frames and connections to other origins. Each check waits for the
// page's own securitypolicyviolation event rather than for time to pass.
import { browser, expect } from "@wdio/globals";
import { waitOnline } from "../support/app.mjs";

/**
 * Tries `kind` of forbidden thing in the page and resolves with what it
 * returned and the first CSP violation it caused (null if none came within
 * `limitMs`: the guard against a CSP that lets it through). The attempts
 * live in the page function itself: making one from text would be eval,
 * which the CSP refuses.
 */
async function underCsp(kind, limitMs = 5000) {
  return browser.execute(
    (what, limit) =>
      new Promise((resolve) => {
        let outcome;
        const done = (violation) => {
          document.removeEventListener("securitypolicyviolation", onViolation);
          clearTimeout(guard);
          resolve({ outcome, violation });
        };
        const onViolation = (e) => done({ directive: e.effectiveDirective || e.violatedDirective, blocked: e.blockedURI });
        document.addEventListener("securitypolicyviolation", onViolation);
        const guard = setTimeout(() => done(null), limit);
        const attempts = {
          inlineScript: () => {
            window.__conclaveInjected = false;
            const script = document.createElement("script");
            script.textContent = "window.__conclaveInjected = true";
            document.body.appendChild(script);
            return window.__conclaveInjected;
          },
          eval: () => window.eval("1 + 1"),
          frame: () => {
            const frame = document.createElement("iframe");
            frame.src = "https://example.com/";
            document.body.appendChild(frame);
          },
          fetch: () => {
            fetch("https://example.com/").catch(() => {});
          },
        };
        try {
          outcome = { value: attempts[what]() ?? null };
        } catch (e) {
          outcome = { error: String(e) };
        }
      }),
    kind,
    limitMs,
  );
}

describe("The window's security", () => {
  before(async () => {
    await waitOnline();
  });

  it("refuses a command outside its capability and answers one inside it", async () => {
    const answers = await browser.execute(async () => {
      const invoke = window.__TAURI_INTERNALS__.invoke;
      const outcome = async (cmd, args) => {
        try {
          return { ok: await invoke(cmd, args) };
        } catch (e) {
          return { error: String(e) };
        }
      };
      return {
        granted: await outcome("app_info", {}),
        outside: await outcome("plugin:window|set_title", { value: "pwned" }),
        title: document.title,
      };
    });
    expect(answers.granted.error).toBeUndefined();
    expect(answers.outside.error).toMatch(/not allowed/i);
    expect(answers.title).not.toBe("pwned");
    expect(await browser.getTitle()).not.toBe("pwned");
  });

  it("blocks an injected inline script", async () => {
    const { outcome, violation } = await underCsp("inlineScript");
    expect(outcome.value).toBe(false);
    expect(violation?.directive).toMatch(/^script-src/);
  });

  it("blocks eval", async () => {
    const { outcome, violation } = await underCsp("eval");
    expect(outcome.error).toMatch(/EvalError|unsafe-eval|Refused/i);
    expect(violation?.directive).toMatch(/^script-src/);
  });

  it("blocks a frame", async () => {
    const { violation } = await underCsp("frame");
    expect(violation?.directive).toBe("frame-src");
  });

  it("blocks a connection to another origin", async () => {
    const { violation } = await underCsp("fetch");
    expect(violation?.directive).toBe("connect-src");
  });
});
