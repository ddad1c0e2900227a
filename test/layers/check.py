#!/usr/bin/env python3
"""test/layers/check.py: the layers of src/ call one way.

src/ is split into folders, one per layer, lowest first:

    common  catalog  recorders  policy  engine  workers  api

Each layer's public headers live in src/include/pipeline/ as <layer>.h or
<layer>/<concern>.h; a folder may also keep private headers of its own
(src/<layer>/<name>.h), for its files only. This check fails when

  - a C file or header includes a project header of a higher layer, or a
    private header of another folder;
  - project headers include each other in a cycle;
  - a C file lies outside the layer folders, or runs past 800 lines.

It prints one line per file (ok / not ok, with the reason) and ends with
"N passed, N failed"; the exit status is 1 when anything failed.
Usage: python3 test/layers/check.py [SRC_DIR]
"""
import os
import re
import sys

LAYERS = ["common", "catalog", "recorders", "policy", "engine", "workers", "api"]
RANK = {name: i for i, name in enumerate(LAYERS)}
MAX_LINES = 800
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)

src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "src")
src = os.path.normpath(src)
inc_root = os.path.join(src, "include")


def layer_of_public(header):
    """The layer of a public header path 'pipeline/<layer>[/...].h', or None."""
    m = re.match(r"pipeline/([a-z_]+)(?:/[^/]+)?\.h$", header)
    return m.group(1) if m and m.group(1) in RANK else None


def resolve(including_file, header):
    """The file an include names, if it is one of the project's, else None."""
    local = os.path.join(os.path.dirname(including_file), header)
    if os.path.isfile(local):
        return os.path.normpath(local)
    public = os.path.join(inc_root, header)
    if os.path.isfile(public):
        return os.path.normpath(public)
    return None


def layer_of_file(path):
    rel = os.path.relpath(path, src)
    parts = rel.split(os.sep)
    if parts[0] == "include":
        return layer_of_public("/".join(parts[1:]))
    return parts[0] if parts[0] in RANK else None


files = []
for root, _, names in os.walk(src):
    for n in sorted(names):
        if n.endswith((".c", ".h")):
            files.append(os.path.join(root, n))
files.sort()

passed = failed = 0
graph = {}
for path in files:
    rel = os.path.relpath(path, src)
    problems = []
    text = open(path, encoding="utf-8", errors="replace").read()
    layer = layer_of_file(path)
    if layer is None:
        problems.append("not in a layer folder (%s)" % ", ".join(LAYERS))
    if path.endswith(".c") and text.count("\n") > MAX_LINES:
        problems.append("%d lines, more than %d" % (text.count("\n"), MAX_LINES))
    graph[path] = []
    for header in INCLUDE.findall(text):
        target = resolve(path, header)
        if target is None:
            continue                    # PostgreSQL's or the system's
        graph[path].append(target)
        target_layer = layer_of_file(target)
        target_rel = os.path.relpath(target, src)
        if target_rel.split(os.sep)[0] != "include" and \
                os.path.dirname(target) != os.path.dirname(path):
            problems.append("includes %s, private to another folder" % target_rel)
        elif layer and target_layer and RANK[target_layer] > RANK[layer]:
            problems.append("includes %s of layer %s, above its own layer %s"
                            % (header, target_layer, layer))
    if problems:
        failed += 1
        print("not ok - %s: %s" % (rel, "; ".join(problems)))
    else:
        passed += 1
        print("ok - %s (%s)" % (rel, layer))

# include cycles among the project's own files
WHITE, GREY, BLACK = 0, 1, 2
colour = {p: WHITE for p in graph}
cycles = []


def visit(node, stack):
    colour[node] = GREY
    stack.append(node)
    for nxt in graph.get(node, []):
        if colour.get(nxt, BLACK) == GREY:
            cycles.append(stack[stack.index(nxt):] + [nxt])
        elif colour.get(nxt) == WHITE:
            visit(nxt, stack)
    stack.pop()
    colour[node] = BLACK


for p in sorted(graph):
    if colour[p] == WHITE:
        visit(p, [])
if cycles:
    for c in cycles:
        failed += 1
        print("not ok - include cycle: %s" % " -> ".join(os.path.relpath(p, src) for p in c))
else:
    passed += 1
    print("ok - no include cycle among %d project files" % len(graph))

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
