"""The import graph of ``src/tokembed``, read from the AST (nothing is imported).

Two rules (issue 10):

1. **No cycles** among tokembed modules at module level.
2. **A tokembed module is imported inside a function only to keep a heavy dependency lazy**:
   the imported module must pull in (at module level, transitively) one of :data:`HEAVY`
   that the importing module does not already pull in. Each such import is listed in
   :data:`LAZY` with the heavy dependency it keeps away and why that matters; the test
   checks the stated dependency is really what the import brings in, and that no entry
   is stale.

The base ``import tokembed`` pulls in none of :data:`HEAVY` (checked at run time in test_cli.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "tokembed"

#: Third-party packages too heavy (import time, memory, optional install) to load before they are needed.
HEAVY = frozenset({"torch", "transformers", "faiss", "sklearn", "matplotlib", "umap", "gensim"})

_CLI_HELP = "`tokembed --help` imports every subcommand module; it must not load torch"

#: (importing module, imported module) -> (heavy dependency kept lazy, why).
LAZY: dict[tuple[str, str], tuple[str, str]] = {
    # the CLI: subcommands run their library code inside _run
    ("tokembed.cli.compress", "tokembed.compress.apply"): ("torch", _CLI_HELP),
    ("tokembed.cli.embed", "tokembed.contextual"): ("torch", _CLI_HELP),
    ("tokembed.cli.embed", "tokembed.device"): ("torch", _CLI_HELP),
    ("tokembed.cli.eval", "tokembed.device"): ("torch", _CLI_HELP),
    ("tokembed.cli.eval", "tokembed.training.checkpoint"): ("torch", _CLI_HELP),
    ("tokembed.cli.eval", "tokembed.training.evaluate"): ("torch", _CLI_HELP),
    ("tokembed.cli.study", "tokembed.study"): ("torch", _CLI_HELP),
    ("tokembed.cli.study", "tokembed.training.distributed"): ("torch", _CLI_HELP),
    ("tokembed.cli.train", "tokembed.training.config"): ("torch", _CLI_HELP),
    ("tokembed.cli.eval", "tokembed.training.plots"): ("torch", _CLI_HELP),
    ("tokembed.cli.eval", "tokembed.compress.reader"): ("torch", _CLI_HELP),
    ("tokembed.cli.train", "tokembed.training.plots"): ("torch", _CLI_HELP),
    ("tokembed.cli.train", "tokembed.training.distributed"): ("torch", _CLI_HELP),
    ("tokembed.cli.train", "tokembed.training.pipeline"): ("torch", _CLI_HELP),
    ("tokembed.cli.vectors", "tokembed.embeddings.pretrained"): ("torch", _CLI_HELP),
    ("tokembed.cli.vocab", "tokembed.vocab.surgery"): ("torch", _CLI_HELP),
    ("tokembed.cli.vocab", "tokembed.vocab.apply"): ("torch", _CLI_HELP),
    ("tokembed.cli.export", "tokembed.vocab.export"): ("torch", _CLI_HELP),
    ("tokembed.cli.checkpoint", "tokembed.training.sharded_checkpoint"): ("torch", _CLI_HELP),
    # diagnostics read numpy sources; only a tokembed checkpoint needs the model (torch)
    ("tokembed.sources", "tokembed.training.checkpoint"): ("torch", "numpy sources (vector files, HF folders) load without torch"),
    ("tokembed.sources", "tokembed.embeddings.pretrained"): ("torch", "numpy sources load without torch"),
    ("tokembed.sources", "tokembed.compress.reader"): ("torch", "numpy sources load without torch"),
    ("tokembed.diagnostics.inspect", "tokembed.contextual"): ("torch", "contextual geometry runs only for checkpoints"),
}

#: Function-level imports in modules other engineers are restructuring (issue 10 leaves them to their
#: owners): (importing module, imported module) -> why it is tolerated for now. Remove entries as they go.
PENDING: dict[tuple[str, str], str] = {
    ("tokembed.cli.vectors", "tokembed.tokenizers"): "embeddings/pretrained owner",
    ("tokembed.diagnostics.neighbors", "tokembed.errors"): "diagnostics/neighbors owner",
    ("tokembed.embeddings.pretrained", "tokembed.artifacts"): "embeddings/pretrained owner",
    ("tokembed.sources", "tokembed.errors"): "sources.py owner",
    ("tokembed.sources", "tokembed.tokenizers"): "sources.py owner",
}


def _modules() -> dict[str, Path]:
    out = {}
    for f in sorted(SRC.rglob("*.py")):
        rel = f.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = f
    return out


MODULES = _modules()


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(name: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = name.split(".") if _is_package(name) else name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(name: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Modules an import statement loads: tokembed modules (and submodules named in ``from X import sub``)
    and third-party top-level names."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    mod = _resolve(name, node)
    out = [] if mod in _parents(name) else [mod]  # an enclosing package is already being imported
    for a in node.names:
        if f"{mod}.{a.name}" in MODULES:
            out.append(f"{mod}.{a.name}")
    return out


def _imports(name: str) -> tuple[set[str], list[tuple[str, int]], set[str]]:
    """(tokembed modules imported at module level, [(tokembed module, line) imported inside a function],
    third-party top-level packages imported at module level)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    top: set[str] = set()
    lazy: list[tuple[str, int]] = []
    third: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for t in _targets(name, child):
                    if t.split(".")[0] == "tokembed":
                        if t in MODULES:
                            (lazy.append((t, child.lineno)) if in_function else top.add(t))
                    elif not in_function and not (isinstance(child, ast.ImportFrom) and child.level):
                        third.add(t.split(".")[0])
            fn = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, in_function or fn)

    visit(tree, False)
    top.discard(name)
    return top, lazy, third


GRAPH = {m: _imports(m) for m in MODULES}


def _heavy_closure(name: str) -> set[str]:
    """Heavy packages loaded by ``import name`` (its parent packages included), through module-level imports."""
    seen, stack, heavy = set(), [name, *_parents(name)], set()
    while stack:
        m = stack.pop()
        if m in seen:
            continue
        seen.add(m)
        top, _, third = GRAPH[m]
        heavy |= third & HEAVY
        for t in top:
            stack += [t, *_parents(t)]
    return heavy


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(GRAPH[v][0]):
            if w not in index:
                strong(w)
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

    for v in sorted(GRAPH):
        if v not in index:
            strong(v)
    return out


def test_no_import_cycles_at_module_level():
    assert _cycles() == []


def test_tokembed_modules_are_imported_in_functions_only_to_keep_a_heavy_dependency_lazy():
    problems = []
    used = set()
    for m, (_, lazy, _) in GRAPH.items():
        for target, line in lazy:
            key = (m, target)
            used.add(key)
            if key in PENDING:
                continue
            if key not in LAZY:
                problems.append(f"{MODULES[m].relative_to(SRC.parent)}:{line} imports {target} inside a function; "
                                f"import it at the top, or add it to LAZY with the heavy dependency it keeps lazy")
                continue
            heavy, _why = LAZY[key]
            brought = _heavy_closure(target) - _heavy_closure(m)
            if heavy not in brought:
                problems.append(f"LAZY{key}: says it keeps {heavy} lazy, but importing {target} adds {sorted(brought) or 'nothing heavy'}")
    stale = sorted(set(LAZY) - used) + sorted(set(PENDING) - used)
    problems += [f"LAZY/PENDING entry {k} matches no function-level import any more; remove it" for k in stale]
    assert not problems, "\n".join(problems)


def test_the_base_package_pulls_in_nothing_heavy():
    assert _heavy_closure("tokembed") == set()


def test_the_graph_reader_sees_relative_and_submodule_imports():
    top, lazy, third = GRAPH["tokembed.training.loop"]
    assert {"tokembed.training.checkpoint", "tokembed.metrics", "tokembed.model"} <= top
    assert "torch" in third
    assert "torch" in _heavy_closure("tokembed.training.loop")
    assert "torch" not in _heavy_closure("tokembed.training.shards")  # tokenizing workers stay light


def test_the_cli_parser_loads_nothing_heavy():
    """``tokembed --help`` builds every subcommand's parser: none may import a heavy dependency."""
    import subprocess
    import sys

    code = "import sys; from tokembed.cli import build_parser; build_parser(); print(sorted(m for m in %r if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code % sorted(HEAVY)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
