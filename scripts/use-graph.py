#!/usr/bin/env python3
"""Module-to-module `use` graph of one Rust crate, and its import cycles.

    scripts/use-graph.py crates/node/src          # cycles only (exit 1 if any)
    scripts/use-graph.py crates/node/src --edges  # every edge, then cycles

Each file is a module (`a/b.rs` and `a/b/mod.rs` are `a::b`, `lib.rs` or
`main.rs` the root). An edge A -> B means code in A names an item of B, in a
`use` declaration or an inline `crate::`, `super::` or `self::` path.
Inline `mod name { ... }` blocks (tests) belong to their file. `mod x;`
declarations are not edges. A name the target re-exports (`pub use`) is
followed to where it is defined, so `crate::NodeError` counts as an edge to
the module that defines `NodeError`, not to the root.
"""

import os
import re
import sys
from collections import defaultdict

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip_comments_and_strings(text):
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not re.match(r"\w", text[i - 1])):
            hashes = re.match(r"r(#*)\"", text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            out.append('""')
            i = n if end < 0 else end + 1 + len(hashes)
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            out.append('""')
            i += 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:]):
            m = re.match(r"'(\\.|[^\\'])'", text[i:])
            out.append("' '")
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def module_of(root, path):
    rel = os.path.relpath(path, root)[:-3].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    if rel in (["lib"], ["main"]):
        rel = []
    return tuple(rel)


def expand_use_tree(tree):
    """`a::{b, c::{d as e, *}}` -> [['a','b'], ['a','c','d'], ['a','c','*']]."""
    tree = re.sub(r"\s+", "", tree)
    results = []

    def parse(s, prefix):
        depth, start, parts = 0, 0, []
        for k, ch in enumerate(s):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(s[start:k])
                start = k + 1
        parts.append(s[start:])
        for part in parts:
            if not part:
                continue
            brace = part.find("{")
            if brace >= 0:
                head = [p for p in part[:brace].split("::") if p]
                parse(part[brace + 1 : part.rindex("}")], prefix + head)
            else:
                part = re.sub(r"as" + IDENT + "$", "", part) if "as" in part else part
                segs = [p for p in part.split("::") if p]
                segs = [re.sub(r"^(" + IDENT + r")as" + IDENT + r"$", r"\1", p) for p in segs]
                if segs == ["self"]:
                    results.append(prefix)
                else:
                    results.append(prefix + segs)

    parse(tree, [])
    return results


def scan(root):
    files = []
    for d, _, names in os.walk(root):
        files += [os.path.join(d, f) for f in names if f.endswith(".rs")]
    modules = {module_of(root, f): f for f in files}
    uses = defaultdict(list)  # module -> [(absolute path segments)]
    reexports = defaultdict(dict)  # module -> name -> absolute path
    for mod, path in modules.items():
        text = strip_comments_and_strings(open(path, encoding="utf-8").read())
        # Inline module blocks: map each offset to its inline-module depth.
        inline = []
        for m in re.finditer(r"\bmod\s+(" + IDENT + r")\s*\{", text):
            depth, k = 1, m.end()
            while k < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[k], 0)
                k += 1
            inline.append((m.end(), k, m.group(1)))

        def scope_at(offset):
            return mod + tuple(name for s, e, name in inline if s <= offset < e)

        def absolute(segs, scope):
            if not segs:
                return None
            if segs[0] == "crate":
                return list(segs[1:])
            if segs[0] == "self":
                return list(scope) + list(segs[1:])
            if segs[0] == "super":
                base = list(scope)
                while segs and segs[0] == "super":
                    base, segs = base[:-1], segs[1:]
                return base + list(segs)
            # A `use` of a child module declared here (`use foo::Bar` in 2018
            # paths resolves relative to the crate root only for `crate::`).
            if tuple(scope) + (segs[0],) in modules:
                return list(scope) + list(segs)
            return None

        spans = []
        for m in re.finditer(r"\b(pub(\([^)]*\))?\s+)?use\s+([^;]+);", text):
            spans.append((m.start(), m.end()))
            scope = scope_at(m.start())
            for segs in expand_use_tree(m.group(3)):
                target = absolute(segs, scope)
                if target is None:
                    continue
                uses[mod].append(target)
                if m.group(1) and segs[-1] != "*" and scope == mod:
                    reexports[mod][segs[-1]] = target
        for m in re.finditer(r"\b(crate|super|self)((::" + IDENT + r")+)", text):
            if any(s <= m.start() < e for s, e in spans):
                continue
            segs = [m.group(1)] + [p for p in m.group(2).split("::") if p]
            target = absolute(segs, scope_at(m.start()))
            if target is not None:
                uses[mod].append(target)
    return modules, uses, reexports


def resolve(target, modules, reexports, depth=0):
    """The module that defines the item `target` names."""
    for k in range(len(target), -1, -1):
        prefix = tuple(target[:k])
        if prefix in modules:
            rest = target[k:]
            if rest and depth < 8 and rest[0] in reexports.get(prefix, {}):
                return resolve(reexports[prefix][rest[0]] + rest[1:], modules, reexports, depth + 1)
            return prefix
    return ()


def cycles(graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def name(mod):
    return "crate" if not mod else "::".join(mod)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        sys.exit(__doc__)
    modules, uses, reexports = scan(args[0])
    graph = defaultdict(set)
    for mod, targets in uses.items():
        for t in targets:
            to = resolve(t, modules, reexports)
            if to != mod:
                graph[mod].add(to)
    edges = sum(len(v) for v in graph.values())
    if "--edges" in sys.argv:
        for mod in sorted(graph):
            print(f"{name(mod)} -> {', '.join(sorted(name(t) for t in graph[mod]))}")
    found = cycles(graph)
    print(f"{args[0]}: {len(modules)} modules, {edges} edges, {len(found)} cycles")
    for comp in found:
        members = set(comp)
        print("cycle: " + " <-> ".join(name(m) for m in comp))
        for m in comp:
            for t in sorted(graph[m] & members):
                print(f"    {name(m)} -> {name(t)}")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
