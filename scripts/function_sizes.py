#!/usr/bin/python3
"""Sizes of the code: the longest function bodies and the biggest files under a source tree.

    scripts/function_sizes.py [ROOT=src] [--top N] [--max LINES]

A function is a definition that starts at the beginning of a line (this code base does not
indent namespace contents) and whose line, or a following one, opens a brace before any
semicolon; its length is the number of lines from its first line to its closing brace.
Lambdas and local classes count toward the function that contains them. With --max, exits 1
when a function is longer (the issue-17 bound is 150 lines outside tests)."""
import argparse
import os
import re
import sys

START = re.compile(r"^[A-Za-z_][\w:<>,\s\*&~\[\]]*\s[\*&]?~?[\w:]+(<[^>]*>)?\s*\(|^[\w:]+::~?\w+\s*\(")
SKIP = re.compile(r"^(namespace|struct|class|enum|union|using|typedef|template\s*<[^>]*>\s*(struct|class)|#|//|extern)")


def strip(line):
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])*'", "''", line)
    return line.split("//")[0]


def functions(path):
    with open(path, errors="replace") as f:
        lines = f.read().splitlines()
    out = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if START.match(line) and not SKIP.match(line):
            # find the opening brace of the body (before a ';' that would make it a declaration)
            j, depth_paren, opened = i, 0, False
            while j < len(lines):
                text = strip(lines[j])
                for ch in text:
                    if ch == "(":
                        depth_paren += 1
                    elif ch == ")":
                        depth_paren -= 1
                    elif ch == ";" and depth_paren == 0:
                        break
                    elif ch == "{" and depth_paren == 0:
                        opened = True
                        break
                else:
                    j += 1
                    continue
                break
            if not opened:
                i = j + 1
                continue
            depth, k = 0, j
            while k < len(lines):
                for ch in strip(lines[k]):
                    if ch == "{":
                        depth += 1
                    elif ch == "}":
                        depth -= 1
                if depth <= 0 and k >= j:
                    break
                k += 1
            name = re.search(r"([\w:~]+)\s*\(", line)
            out.append((k - i + 1, f"{path}:{i + 1}", name.group(1) if name else line.strip()[:40]))
            i = k + 1
        else:
            i += 1
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root", nargs="?", default="src")
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--max", type=int, default=0)
    a = ap.parse_args()
    funcs, files = [], []
    for d, _, names in os.walk(a.root):
        for n in names:
            if n.endswith((".cc", ".h", ".cpp", ".hpp")):
                p = os.path.join(d, n)
                with open(p, errors="replace") as f:
                    files.append((sum(1 for _ in f), p))
                funcs += functions(p)
    funcs.sort(reverse=True)
    files.sort(reverse=True)
    print(f"longest functions under {a.root}:")
    for n, where, name in funcs[: a.top]:
        print(f"  {n:5d}  {name}  ({where})")
    print(f"biggest files under {a.root}:")
    for n, p in files[:4]:
        print(f"  {n:5d}  {p}")
    if a.max and funcs and funcs[0][0] > a.max:
        print(f"functions over {a.max} lines: {sum(1 for f in funcs if f[0] > a.max)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
