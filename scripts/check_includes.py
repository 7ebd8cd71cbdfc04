#!/usr/bin/python3
"""Checks that modules include each other only along the allowed arrows (DESIGN.md's table).

The allowed arrows are read from CMakeLists.txt, the one place they are written down: module
NAME may include module M when `prefrl_module(NAME ... DEPS ... prefrl_M ...)` lists it (its
own headers always). Every `#include "prefrl/<module>/..."` in src/prefrl/<module>/ is checked
against them. A few engine headers are also kept inside the module that wraps them
(EXTERNAL_HEADERS below): the preference store's SQLite handle never leaves prefs/.

Usage: check_includes.py [ROOT]   (ROOT: the directory holding CMakeLists.txt and src/prefrl/;
                                   default: this script's repository)
Prints one line per violation, `FILE:LINE: ...`, and exits 1 if there is any; 0 otherwise;
2 when ROOT cannot be read (no CMakeLists.txt, no prefrl_module calls).
Standard library only (Debian's /usr/bin/python3).
"""
import os
import re
import sys

# Engine headers that only the listed modules may include: the seam's interface is all the
# rest of the code sees (DESIGN.md, "Seams": no engine handle outside the store).
EXTERNAL_HEADERS = {
    "sqlite3.h": {"prefs"},
}

SOURCE_SUFFIXES = (".h", ".hh", ".hpp", ".cc", ".cpp", ".cxx", ".inc", ".ipp")
# prefrl_module's other keywords (its cmake_parse_arguments): values after them are not DEPS.
OTHER_KEYWORDS = {"TORCH"}
MODULE_CALL = re.compile(r"\bprefrl_module\s*\(([^)]*)\)", re.S)
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^">]+)[">]')


def read_modules(cmakelists):
    """{module: set of modules it may include} from the prefrl_module(...) calls."""
    with open(cmakelists, encoding="utf-8") as f:
        text = "\n".join(line.split("#", 1)[0] for line in f)  # CMake comments dropped
    allowed = {}
    for m in MODULE_CALL.finditer(text):
        words = m.group(1).split()
        if not words:
            continue
        name, deps, in_deps = words[0], set(), False
        for w in words[1:]:
            if w == "DEPS":
                in_deps = True
            elif w in OTHER_KEYWORDS:
                in_deps = False
            elif in_deps and w.startswith("prefrl_"):
                deps.add(w[len("prefrl_"):])
        allowed[name] = deps
    return allowed


def check(root):
    """Violations under root, as printable lines (sorted by file and line)."""
    allowed = read_modules(os.path.join(root, "CMakeLists.txt"))
    if not allowed:
        raise OSError("no prefrl_module(...) calls in " + os.path.join(root, "CMakeLists.txt"))
    src = os.path.join(root, "src", "prefrl")
    if not os.path.isdir(src):
        raise OSError("no directory " + src)
    problems = []
    for module in sorted(os.listdir(src)):
        mdir = os.path.join(src, module)
        if not os.path.isdir(mdir):
            continue
        if module not in allowed:
            problems.append(f"{os.path.relpath(mdir, root)}/: module {module} has no prefrl_module({module} ...) "
                            "in CMakeLists.txt, so nothing says what it may include")
            continue
        may = allowed[module]
        for dirpath, dirnames, filenames in os.walk(mdir):
            dirnames.sort()
            for fn in sorted(filenames):
                if not fn.endswith(SOURCE_SUFFIXES):
                    continue
                path = os.path.join(dirpath, fn)
                rel = os.path.relpath(path, root)
                with open(path, encoding="utf-8", errors="replace") as f:
                    for lineno, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        target = m.group(2)
                        parts = target.split("/")
                        if len(parts) >= 3 and parts[0] == "prefrl":
                            other = parts[1]
                            if other == module or other in may:
                                continue
                            known = "" if other in allowed else ", not a module declared in CMakeLists.txt"
                            problems.append(
                                f"{rel}:{lineno}: includes module {other}, which module {module} may not include "
                                f"(\"{target}\"{known}; {module} may include "
                                f"{', '.join(sorted(may)) or 'no other module'}, "
                                f"per prefrl_module({module} ...) in CMakeLists.txt)")
                        elif target in EXTERNAL_HEADERS and module not in EXTERNAL_HEADERS[target]:
                            owners = ", ".join(sorted(EXTERNAL_HEADERS[target]))
                            spelled = m.group(1) + target + (">" if m.group(1) == "<" else '"')
                            problems.append(
                                f"{rel}:{lineno}: includes {spelled}, "
                                f"which only module {owners} may include (module {module} goes through its "
                                "interface)")
    return problems


def main(argv):
    if len(argv) > 2 or (len(argv) == 2 and argv[1] in ("-h", "--help")):
        print(__doc__.strip())
        return 0 if len(argv) == 2 else 2
    root = argv[1] if len(argv) == 2 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        problems = check(root)
    except OSError as e:
        print(f"check_includes: {e}", file=sys.stderr)
        return 2
    for p in problems:
        print(p)
    if problems:
        print(f"check_includes: {len(problems)} violation(s) of the module arrows under {root}", file=sys.stderr)
        return 1
    print(f"check_includes: every include under {os.path.join(root, 'src', 'prefrl')} follows the module arrows")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
