"""An import-linter contract type: "these modules do not import X *at import time*".

import-linter's ``forbidden`` contract counts every import statement, also those
inside functions, so it cannot express "the engine imports torch only when the
torch runtime is asked for". This contract keeps only the import edges made by
module-level statements (also inside top-level ``if``/``try``, but not under
``if TYPE_CHECKING:``) and fails when a source module reaches a forbidden module
through a chain of such edges, directly or through other modules.
"""
from __future__ import annotations

import ast
import importlib.util
from functools import cache

from importlinter import Contract, ContractCheck, fields, output


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _module_level_lines(body: list[ast.stmt]) -> set[int]:
    """Line numbers of the import statements that run when the module is imported."""
    lines: set[int] = set()
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            lines.add(node.lineno)
        elif isinstance(node, ast.If):
            lines |= _module_level_lines(node.orelse)
            if not _is_type_checking(node.test):
                lines |= _module_level_lines(node.body)
        elif isinstance(node, ast.Try):
            for part in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                lines |= _module_level_lines(part)
        elif isinstance(node, (ast.With, ast.For, ast.While)):
            lines |= _module_level_lines(node.body)
    return lines


@cache
def import_time_lines(module: str) -> frozenset[int]:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return frozenset()
    with open(spec.origin, encoding="utf-8") as handle:
        return frozenset(_module_level_lines(ast.parse(handle.read()).body))


def import_time_imports(graph, module: str) -> dict[str, int]:
    """{imported module: line} for the imports `module` makes at import time."""
    lines = import_time_lines(module)
    found: dict[str, int] = {}
    for imported in graph.find_modules_directly_imported_by(module):
        for detail in graph.get_import_details(importer=module, imported=imported):
            if detail["line_number"] in lines:
                found.setdefault(imported, detail["line_number"])
    return found


class ImportTimeForbiddenContract(Contract):
    """``source_modules`` must not import ``forbidden_modules`` when they are imported."""

    source_modules = fields.ListField(subfield=fields.ModuleField())
    forbidden_modules = fields.ListField(subfield=fields.ModuleField())

    def check(self, graph, verbose: bool) -> ContractCheck:
        forbidden = {m.name for m in self.forbidden_modules}
        chains = []
        sources: list[str] = []
        for name in (m.name for m in self.source_modules):  # a package stands for all its modules
            sources += [name, *sorted(graph.find_descendants(name))]
        for source in sources:
            chain = self._chain(graph, source, forbidden)
            if chain:
                chains.append(chain)
        return ContractCheck(kept=not chains, metadata={"chains": chains})

    @staticmethod
    def _chain(graph, source: str, forbidden: set[str]) -> list[tuple[str, str, int]] | None:
        """Breadth-first over import-time edges: the first chain from `source` to a forbidden module."""
        parents: dict[str, tuple[str, int] | None] = {source: None}
        queue = [source]
        while queue:
            module = queue.pop(0)
            for imported, line in import_time_imports(graph, module).items():
                if imported in parents:
                    continue
                parents[imported] = (module, line)
                if imported.split(".")[0] in forbidden or imported in forbidden:
                    steps, here = [], imported
                    while parents[here] is not None:
                        importer, at = parents[here]
                        steps.append((importer, here, at))
                        here = importer
                    return steps[::-1]
                queue.append(imported)
        return None

    def render_broken_contract(self, check: ContractCheck) -> None:
        for chain in check.metadata["chains"]:
            output.print_error(f"{chain[0][0]} imports {chain[-1][1]} at import time:")
            for importer, imported, line in chain:
                output.indent_cursor()
                output.print_error(f"{importer} -> {imported} (l.{line})")
            output.new_line()
