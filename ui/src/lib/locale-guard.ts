// WebKitGTK reports the process locale as navigator.language; under LANG=C
// (or unset) that is "C", which Intl rejects, and libraries that format
// numbers at load time (uPlot) would throw before the UI starts. Imported
// first by main.ts so it runs before them.
function validTag(tag: string | undefined): boolean {
  if (!tag) return false;
  try {
    new Intl.NumberFormat(tag);
    return true;
  } catch {
    return false;
  }
}

if (!validTag(navigator.language)) {
  const fallback = "en-US";
  Object.defineProperty(navigator, "language", { value: fallback, configurable: true });
  Object.defineProperty(navigator, "languages", { value: [fallback], configurable: true });
}

export {};
