"""The bpsrun package's shape, read from source with ast (nothing is imported): no import cycles, no stdlib shadows."""

import ast
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "bpsrun"


def module_names() -> dict[str, Path]:
    """Dotted name -> file, for every module under bpsrun/ (a package is its __init__.py)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The bpsrun modules `name` imports anywhere in its file: top level, in functions and under TYPE_CHECKING
    alike, since a cycle hidden in a function or a type-only import is still a tangle."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: `from ..x import y` climbs level - 1 packages above this one
                anchor = package.rsplit(".", node.level - 1)[0]
                base = f"{anchor}.{base}" if base else anchor
            # `from pkg import y` imports the module pkg.y when there is one, else a name defined in pkg
            targets |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
    resolved = set()
    for target in targets:
        while target and target not in modules:  # the longest prefix that is a bpsrun module; none if third-party
            target = target.rpartition(".")[0]
        if target:
            resolved.add(target)
    return resolved - {name}


def test_no_import_cycles_in_bpsrun():
    modules = module_names()
    graph = {name: imported(name, path, modules) for name, path in modules.items()}
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None


def test_no_module_shadows_the_standard_library():
    """A script run from inside bpsrun/ puts that folder first on sys.path, where e.g. a `select` would win."""
    shadows = [name for name in module_names() if name.rpartition(".")[2] in sys.stdlib_module_names]
    assert not shadows, f"named like standard-library modules: {shadows}"
