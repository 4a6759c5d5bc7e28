// Prints the PromQL queries of a Grafana dashboard, one JSON object a line:
// {"panel", "expr", "metrics"}, where metrics are the series names the query
// reads. The template variables' label_values() queries are included.
//   node dashboard-queries.mjs DASHBOARD.json
import fs from "node:fs";

const dashboard = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));

// Words of PromQL that are not series names: keywords, and the aggregation
// operators (followed by "by (...)" rather than by "(").
const keywords = new Set(
  ["by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or", "unless"].concat(
    ["sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile"],
  ),
);

/** Series names a PromQL expression reads: identifiers that are not
 * functions, keywords, label names, strings, numbers or durations. */
function seriesNames(expr) {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // strings, e.g. label_replace's arguments
    .replace(/\{[^}]*\}/g, "") // label matchers
    .replace(/\[[^\]]*\]/g, "") // range and subquery durations
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "$1") // label lists
    .replace(/(^|[^a-zA-Z0-9_:])\d+(\.\d+)?(e[+-]?\d+)?/gi, "$1"); // numbers
  const names = new Set();
  for (const match of bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const rest = bare.slice(match.index + match[0].length).trimStart();
    if (rest.startsWith("(") || keywords.has(match[0]) || /^(inf|nan)$/i.test(match[0])) continue;
    names.add(match[0]);
  }
  return [...names].sort();
}

function* panelsOf(list) {
  for (const panel of list ?? []) {
    yield panel;
    yield* panelsOf(panel.panels);
  }
}

for (const panel of panelsOf(dashboard.panels)) {
  for (const target of panel.targets ?? []) {
    if (target.expr) console.log(JSON.stringify({ panel: panel.title, expr: target.expr, metrics: seriesNames(target.expr) }));
  }
}
for (const variable of dashboard.templating?.list ?? []) {
  const query = typeof variable.query === "string" ? variable.query : variable.query?.query;
  const labelValues = variable.type === "query" && /^label_values\((.*),\s*\w+\)$/.exec(query ?? "");
  if (labelValues) {
    console.log(JSON.stringify({ panel: `variable ${variable.name}`, expr: labelValues[1], metrics: seriesNames(labelValues[1]) }));
  }
}
