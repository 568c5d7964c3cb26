"""The package layout shows the data flow: imports point one way, engine at the bottom."""

import ast
from pathlib import Path

import autoquant

#: Bottom to top. A module may import its own layer and those below it, never one above.
LAYERS = ["base", "engine", "tasks", "report", "measure", "tracking", "recommend", "study", "top"]
BASE = {"errors", "_validation", "_warnings", "_interrupt"}
PACKAGE = Path(autoquant.__file__).parent


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "top"  # autoquant/__init__.py: the public API
    if parts[1] in BASE:
        return "base"
    return parts[1] if parts[1] in LAYERS else "top"  # cli


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_imports(path: Path) -> set[str]:
    """The autoquant modules ``path`` imports when it runs (at the top or inside a function;
    not those under ``if TYPE_CHECKING:``, which are for type checkers only)."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("autoquant"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("autoquant")}
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {
        name: {m for m in runtime_imports(path) if m in modules and m != name}
        for name, path in modules.items()
    }


def test_imports_never_point_up_the_layers():
    back_edges = [
        f"{module} ({layer(module)}) imports {target} ({layer(target)})"
        for module, targets in import_graph().items()
        for target in targets
        if LAYERS.index(layer(target)) > LAYERS.index(layer(module))
    ]
    assert not back_edges, back_edges


def test_no_module_imports_form_a_cycle():
    # a package's __init__ re-exporting its own modules is not a cycle of the flow
    graph = {
        module: {t for t in targets if not module.startswith(t + ".")}
        for module, targets in import_graph().items()
    }
    done, on_path, cycles = set(), [], []

    def visit(module):
        if module in on_path:
            cycles.append(on_path[on_path.index(module) :] + [module])
            return
        if module in done:
            return
        on_path.append(module)
        for target in sorted(graph.get(module, ())):
            visit(target)
        on_path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    assert not cycles, cycles


def test_every_subpackage_says_what_it_owns():
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 80, f"{init.parent.name}/ needs a docstring saying what it owns"
