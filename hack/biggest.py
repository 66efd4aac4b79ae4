"""The biggest classes and functions by line count (for clean-up notes).

    python hack/biggest.py [--most N] [PATH ...]   (default: operator cluster bench)
"""

from __future__ import annotations

import argparse
import ast
import pathlib


def definitions(path: pathlib.Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    stack = [(tree, "")]
    while stack:
        node, prefix = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                kind = "class" if isinstance(child, ast.ClassDef) else "def"
                start = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                yield kind, name, child.end_lineno - start + 1
                stack.append((child, name + "."))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("paths", nargs="*", default=["operator", "cluster", "bench"])
    parser.add_argument("--most", type=int, default=10)
    args = parser.parse_args()
    rows = []
    for root in args.paths:
        for path in sorted(pathlib.Path(root).rglob("*.py")):
            rows.extend((lines, kind, f"{path}:{name}") for kind, name, lines in definitions(path))
    for wanted in ("class", "def"):
        print(f"biggest {wanted}es:" if wanted == "class" else "biggest functions:")
        chosen = sorted((r for r in rows if r[1] == wanted), reverse=True)[:args.most]
        for lines, _, where in chosen:
            print(f"  {lines:5d}  {where}")


if __name__ == "__main__":
    main()
