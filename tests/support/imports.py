"""Read the project's imports from source (``ast``), and the layer rule from docs/architecture.md.

Used by ``tests/unit/test_layers.py`` and ``tests/unit/test_purity.py``. Nothing is imported or
run: every ``import``/``from ... import`` anywhere in a file counts (inside functions and
``if TYPE_CHECKING:`` blocks too), and so does ``importlib.import_module("literal")``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGES = (
    "events",
    "resilience",
    "telemetry",
    "kafka_auth",
    "projections",
    "control_plane",
    "worker_agent",
)
ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "docs" / "architecture.md"


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported module (or module.name for ``from m import name``)
    line: int
    path: Path


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = ROOT) -> Iterator[tuple[str, Path]]:
    """Every module of the project's packages under ``root``: (dotted name, path)."""
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            yield module_name(root, path), path


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if path.name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports_of(module: str, path: Path) -> Iterator[Import]:
    """Every import in ``path``; ``from a import b`` yields ``a.b`` (b may be a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno, path)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, path, node)
            for alias in node.names:
                target = base if alias.name == "*" else f"{base}.{alias.name}"
                yield Import(module, target, node.lineno, path)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield Import(module, node.args[0].value, node.lineno, path)


# --- the written rule --------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    layer: int
    name: str
    prefixes: tuple[str, ...]


@dataclass(frozen=True)
class Rules:
    units: tuple[Unit, ...]
    never: tuple[tuple[str, tuple[str, ...]], ...]  # (package, forbidden packages)
    private: tuple[str, ...] = ()  # importable only from inside their parent package

    def unit_of(self, module: str) -> Unit | None:
        """The unit whose longest prefix covers ``module`` (None: not ours, or unplaced)."""
        best: tuple[int, Unit] | None = None
        for unit in self.units:
            for prefix in unit.prefixes:
                if module == prefix or module.startswith(prefix + "."):
                    if best is None or len(prefix) > best[0]:
                        best = (len(prefix), unit)
        return None if best is None else best[1]


def read_rules(text: str | None = None) -> Rules:
    """The ```` ```layers ```` block of docs/architecture.md."""
    text = ARCHITECTURE.read_text(encoding="utf-8") if text is None else text
    match = re.search(r"```layers\n(.*?)```", text, re.S)
    if match is None:
        raise AssertionError(f"{ARCHITECTURE}: no ```layers block")
    units: list[Unit] = []
    never: list[tuple[str, tuple[str, ...]]] = []
    private: list[str] = []
    for raw in match.group(1).splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] == "private":
            private.extend(words[1:])
        elif words[0] == "never":
            package, arrow, *forbidden = words[1:]
            assert arrow == "->", f"bad never line: {raw!r}"
            never.append((package, tuple(forbidden)))
        else:
            units.append(Unit(int(words[0]), words[1], tuple(words[2:])))
    return Rules(tuple(units), tuple(never), tuple(private))


def ours(target: str) -> bool:
    return target.split(".")[0] in PACKAGES


def violations(rules: Rules, root: Path = ROOT) -> list[str]:
    """Every import that breaks the rule, as ``module -> target (file:line): why``."""
    out: list[str] = []
    for module, path in modules(root):
        unit = rules.unit_of(module)
        if unit is None:
            out.append(f"{module} ({path.relative_to(root)}): in no unit of the layer table")
            continue
        package = module.split(".")[0]
        for imp in imports_of(module, path):
            if not ours(imp.target):
                continue
            where = f"{module} -> {imp.target} ({path.relative_to(root)}:{imp.line})"
            for pkg, forbidden in rules.never:
                if package == pkg and imp.target.split(".")[0] in forbidden:
                    out.append(f"{where}: never {pkg} -> {imp.target.split('.')[0]}")
            for hidden in rules.private:
                parent = hidden.rsplit(".", 1)[0]
                inside = module == parent or module.startswith(parent + ".")
                if (imp.target == hidden or imp.target.startswith(hidden + ".")) and not inside:
                    out.append(f"{where}: {hidden} is private to {parent}")
            other = rules.unit_of(imp.target)
            if other is None or other is unit:
                continue
            if other.layer > unit.layer:
                out.append(f"{where}: up from {unit.name} ({unit.layer}) to {other.name} "
                           f"({other.layer})")  # fmt: skip
            elif other.layer == unit.layer:
                out.append(f"{where}: sideways from {unit.name} to {other.name} "
                           f"(both layer {unit.layer})")  # fmt: skip
    return out
