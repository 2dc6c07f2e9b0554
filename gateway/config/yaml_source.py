"""Read a YAML file into plain Python values while remembering the line of every value.

``routes.yaml`` problems are reported as ``PATH:LINE: message``, so the loader composes the node
tree itself instead of calling ``yaml.safe_load``: every mapping key and sequence item is recorded
with its line, ``${VAR}`` / ``${VAR:-default}`` are expanded in string scalars, and duplicate
keys (which PyYAML silently lets the last one win) are reported instead of ignored.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

Path_ = tuple[str | int, ...]

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class Document:
    """A parsed YAML document: the values, the line of each path, and problems found so far."""

    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    problems: list[tuple[int, str]] = field(default_factory=list)
    expanded: set[Path_] = field(default_factory=set)  # values that came through ${VAR}

    def line(self, path: Path_) -> int:
        """The line of ``path``, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)


def parse_yaml(text: str, environ: Mapping[str, str] | None = None) -> Document:
    """Compose ``text`` and convert it, collecting syntax, duplicate-key and ``${VAR}`` problems."""
    env = os.environ if environ is None else environ
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        return Document(data=None, problems=[(1, "the file nests too deeply")])
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        return Document(data=None, problems=[(line, f"YAML syntax error: {exc.problem}")])
    except yaml.reader.ReaderError as exc:
        # A character YAML refuses: say where, in one line (its message spans several).
        line = text.count("\n", 0, exc.position) + 1
        shown = f"U+{exc.character:04X}" if isinstance(exc.character, int) else "a byte"
        return Document(data=None, problems=[(line, f"a character YAML cannot read ({shown})")])
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Document(data=None, problems=[(1, f"YAML error: {first}")])
    doc = Document(data=None)
    if node is None:
        return doc
    doc.lines[()] = node.start_mark.line + 1
    try:
        doc.data = _convert(node, (), doc, env, [MAX_VALUES])
    except RecursionError:
        return Document(data=None, problems=[(1, "the file nests too deeply")])
    except _TooLarge:
        message = f"the file expands to more than {MAX_VALUES:,} values (aliases of aliases?)"
        return Document(data=None, problems=[(1, message)])
    finally:
        # The constructor remembers every node it built; a long-running gateway reloads often.
        _SCALAR_LOADER.constructed_objects.clear()
        _SCALAR_LOADER.recursive_objects.clear()
    return doc


_SCALAR_LOADER = yaml.SafeLoader("")


class _TooLarge(Exception):
    """The document expands to more values than any configuration needs."""


MAX_VALUES = 100_000


def _convert(
    node: yaml.Node, path: Path_, doc: Document, env: Mapping[str, str], budget: list[int]
) -> Any:
    line = node.start_mark.line + 1
    # An alias hands back the anchor's node again, and expanding aliases of aliases is how a
    # few hundred bytes ("billion laughs") become gigabytes: count every value produced.
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge()
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _convert(key_node, path, doc, env, budget)
            key_line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                doc.problems.append((key_line, f"keys must be strings, not {key!r}"))
                continue
            if key in result:
                doc.problems.append((key_line, f"duplicate key {key!r}"))
                continue
            doc.lines[(*path, key)] = key_line
            result[key] = _convert(value_node, (*path, key), doc, env, budget)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            doc.lines[(*path, index)] = item.start_mark.line + 1
            items.append(_convert(item, (*path, index), doc, env, budget))
        return items
    try:
        value = _SCALAR_LOADER.construct_object(node, deep=True)
    # An explicit tag SafeLoader cannot build (``!!bool maybe``, ``!!int ''``) fails inside
    # PyYAML with KeyError, IndexError or AttributeError: a problem on its line like the rest.
    except (ValueError, OverflowError, KeyError, IndexError, AttributeError, yaml.YAMLError):
        doc.problems.append((line, f"{node.value[:40]!r}... is not a usable value"))
        return None
    if isinstance(value, str) and "${" in value:
        doc.expanded.add(path)
        return _expand(value, line, doc, env)
    return value


def _expand(value: str, line: int, doc: Document, env: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = env.get(name)
        if found is not None and (found != "" or default is None):
            return found
        if default is not None:
            return default
        doc.problems.append((line, f"environment variable {name} is not set"))
        return ""

    return _ENV.sub(replace, value)
