"""Structure figures of issue 27: the longest functions and the largest config dataclasses of the
Python files of the commit checked out (HEAD: uncommitted edits do not count), read with `ast`, nothing
imported.

    python -m bench.structure          # a second; writes the BENCHMARKS section `structure`

Goals: no function longer than FUNCTION_LIMIT lines (def line to last line, decorators and docstring
included); no `@dataclass` whose name ends in Config with more than CONFIG_LIMIT fields.
"""

from __future__ import annotations

import ast
import subprocess

from bench.report import ROOT, table, write_section

FUNCTION_LIMIT = 120
CONFIG_LIMIT = 12
SHOWN = 8  # rows of each table


def committed_python() -> dict[str, str]:
    """{path: source} of the .py files of HEAD, paths relative to the repository."""
    git = ["git", "-C", str(ROOT)]
    names = subprocess.run([*git, "ls-tree", "-r", "--name-only", "HEAD"], capture_output=True, text=True,
                           check=True).stdout.split("\n")
    return {p: subprocess.run([*git, "show", f"HEAD:{p}"], capture_output=True, text=True, check=True).stdout
            for p in names if p.endswith(".py")}


def function_lengths(files: dict[str, str]) -> list[tuple[int, str, str]]:
    """(lines, file, qualified name) of every function and method in {path: source}, longest first."""
    rows = []
    for path, source in files.items():
        tree = ast.parse(source, filename=path)
        stack = [(node, "") for node in tree.body]
        while stack:
            node, prefix = stack.pop()
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                name = prefix + node.name
                if not isinstance(node, ast.ClassDef):
                    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                    rows.append((node.end_lineno - start + 1, path, name))
                stack += [(child, name + ".") for child in node.body]
    return sorted(rows, reverse=True)


def config_fields(files: dict[str, str]) -> list[tuple[int, str, str]]:
    """(fields, file, class) of every @dataclass named *Config in {path: source}, largest first (annotated
    class attributes other than ClassVar)."""
    rows = []
    for path, source in files.items():
        for node in ast.walk(ast.parse(source, filename=path)):
            if not (isinstance(node, ast.ClassDef) and node.name.endswith("Config")):
                continue
            decorators = [ast.unparse(d) for d in node.decorator_list]
            if not any(d.split("(")[0].endswith("dataclass") for d in decorators):
                continue
            fields = [s for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
                      and "ClassVar" not in ast.unparse(s.annotation)]
            rows.append((len(fields), path, node.name))
    return sorted(rows, reverse=True)


def main() -> None:
    """Measure both figures over HEAD's Python files and write the section."""
    files = committed_python()
    funcs, configs = function_lengths(files), config_fields(files)
    over_f = [r for r in funcs if r[0] > FUNCTION_LIMIT]
    over_c = [r for r in configs if r[0] > CONFIG_LIMIT]
    print(f"longest function {funcs[0][0]} lines ({funcs[0][2]}, {funcs[0][1]}); "
          f"largest config {configs[0][0]} fields ({configs[0][2]}, {configs[0][1]})")
    body = (f"{len(files)} Python files at the commit named above (uncommitted edits not counted), "
            f"{len(funcs)} functions and methods, {len(configs)} config dataclasses.\n\n"
            f"- Longest function: **{funcs[0][0]} lines** (`{funcs[0][2]}`, {funcs[0][1]}); goal ≤ "
            f"{FUNCTION_LIMIT}: {'met' if not over_f else f'{len(over_f)} over'}.\n"
            f"- Largest config: **{configs[0][0]} fields** (`{configs[0][2]}`, {configs[0][1]}); goal ≤ "
            f"{CONFIG_LIMIT}: {'met' if not over_c else f'{len(over_c)} over'}.\n\n"
            + table(["function", "file", "lines"], [[f"`{n}`", f, k] for k, f, n in funcs[:SHOWN]]) + "\n\n"
            + table(["config", "file", "fields"], [[f"`{n}`", f, k] for k, f, n in configs[:SHOWN]]))
    write_section("structure", "Structure: function length and config size", body,
                  command="python -m bench.structure")


if __name__ == "__main__":
    main()
