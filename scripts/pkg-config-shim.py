#!/usr/bin/env python3
"""A minimal pkg-config for machines that have .pc files but no pkg-config binary (the GPU machine may lack it).

Answers the queries CMake's FindPkgConfig makes: --version, --exists, --modversion, --variable=NAME, --cflags*,
--libs*. Looks in PKG_CONFIG_PATH, then the usual system folders."""
import os
import re
import sys

DIRS = [d for d in os.environ.get("PKG_CONFIG_PATH", "").split(":") if d] + [
    "/usr/lib/x86_64-linux-gnu/pkgconfig", "/usr/lib/pkgconfig", "/usr/share/pkgconfig", "/usr/local/lib/pkgconfig"]


def load(name):
    for d in DIRS:
        path = os.path.join(d, name + ".pc")
        if os.path.exists(path):
            break
    else:
        return None
    variables, fields = {"pcfiledir": os.path.dirname(path)}, {}
    expand = lambda s: re.sub(r"\$\{(\w+)\}", lambda m: variables.get(m.group(1), ""), s)
    for line in open(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^(\w[\w.]*)\s*=\s*(.*)$", line)
        if m:
            variables[m.group(1)] = expand(m.group(2))
            continue
        m = re.match(r"^([\w.]+)\s*:\s*(.*)$", line)
        if m:
            fields[m.group(1).lower()] = expand(m.group(2))
    return variables, fields


def main(argv):
    flags = [a for a in argv if a.startswith("--")]
    # Module names, without version constraints ("foo >= 1.2").
    words = [a for a in argv if not a.startswith("--")]
    mods, skip = [], False
    for w in " ".join(words).split():
        if skip:
            skip = False
        elif w in (">=", "<=", "=", ">", "<", "!="):
            skip = True
        else:
            mods.append(w)
    if "--version" in flags:
        print("0.29.2")
        return 0
    loaded = [(m, load(m)) for m in mods]
    missing = [m for m, pc in loaded if pc is None]
    if missing:
        if "--print-errors" in flags:
            print("Package %s was not found" % missing[0], file=sys.stderr)
        return 1
    out = []
    for _, (variables, fields) in loaded:
        cflags, libs = fields.get("cflags", "").split(), fields.get("libs", "").split()
        for f in flags:
            if f.startswith("--variable="):
                out.append(variables.get(f.split("=", 1)[1], ""))
            elif f == "--modversion":
                out.append(fields.get("version", ""))
            elif f == "--cflags":
                out += cflags
            elif f == "--cflags-only-I":
                out += [c for c in cflags if c.startswith("-I")]
            elif f == "--cflags-only-other":
                out += [c for c in cflags if not c.startswith("-I")]
            elif f == "--libs":
                out += libs
            elif f == "--libs-only-L":
                out += [l for l in libs if l.startswith("-L")]
            elif f == "--libs-only-l":
                out += [l for l in libs if l.startswith("-l")]
            elif f == "--libs-only-other":
                out += [l for l in libs if not l.startswith(("-L", "-l"))]
    if out:
        print(" ".join(out))
    return 0


sys.exit(main(sys.argv[1:]))
