"""The documentation stays true to the code, and the repository stands alone.

- docs/configuration.md lists exactly the keys the configuration builder accepts. The accepted
  keys are not copied here: they are found by asking the builder, which names the keys it knows
  whenever it refuses an unknown one.
- Its complete example passes the builder, and its users.yaml example passes the users parser.
- The documentation cites no file outside the repository, and its links lead somewhere.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import ConfigError, parse_config

try:
    from gateway.tokenservice.users import User, parse_users
except ImportError:  # before the token service moved out of gateway/auth/
    from gateway.auth.users import User, parse_users  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
CONFIGURATION = ROOT / "docs" / "configuration.md"
SOURCE = Path("/etc/gateway/routes.yaml")
PROBE = "zz_undocumented_probe"
ITEM = "[]"  # a path step into the first item of a list
MINIMAL: dict[str, Any] = {
    "routes": [{"name": "a", "path": "/a", "upstream": "http://127.0.0.1:9000"}]
}
USERS_SECTION = "users.yaml"
NOT_YET_SECTION = "Not yet supported"
_KEY_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|")
_UNKNOWN = re.compile(rf"unknown key '{PROBE}' in .*\(known: ([^)]*)\)")


# -- reading docs/configuration.md -----------------------------------------------------------


def documented_keys() -> dict[str, set[str]]:
    """The keys in the first column of every ``| key | ...`` table, by ``##`` section."""
    sections: dict[str, set[str]] = {}
    section = ""
    in_key_table = False
    for line in CONFIGURATION.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        if not line.startswith("|"):
            in_key_table = False
            continue
        if re.match(r"^\|\s*key\s*\|", line):
            in_key_table = True
            continue
        match = _KEY_ROW.match(line)
        if in_key_table and match:
            sections.setdefault(section, set()).add(match.group(1))
    return sections


def reference_keys() -> set[str]:
    """The ``routes.yaml`` keys the reference documents as supported."""
    skipped = {USERS_SECTION, NOT_YET_SECTION}
    return {key for name, keys in documented_keys().items() if name not in skipped for key in keys}


def yaml_block_after(heading: str) -> str:
    """The first ```yaml block after the ``## heading``."""
    text = CONFIGURATION.read_text(encoding="utf-8")
    start = text.index(f"\n## {heading}\n")
    match = re.search(r"```yaml\n(.*?)```", text[start:], re.DOTALL)
    assert match, f"no yaml block under ## {heading}"
    return match.group(1)


# -- asking the builder --------------------------------------------------------------------------


def problems_of(document: dict[str, Any]) -> list[str]:
    try:
        parse_config(yaml.safe_dump(document), SOURCE, {})
    except ConfigError as exc:
        return exc.problems
    return []


def with_value(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """The minimal file with ``value`` placed at ``path`` (``[]``: the list's first item)."""
    document = copy.deepcopy(MINIMAL)
    node: Any = document
    for step, following in itertools.pairwise(path):
        if step == ITEM:
            continue
        wanted: type = list if following == ITEM else dict
        if not isinstance(node.get(step), wanted):
            node[step] = [{}] if wanted is list else {}
        node = node[step][0] if wanted is list else node[step]
    node[path[-1]] = value
    return document


def known_keys(section: tuple[str, ...]) -> list[str] | None:
    """The keys the builder accepts in the mapping at ``section``; None when the value there is
    not a mapping of fixed keys (a leaf, a free-form mapping, a list of strings)."""
    for problem in problems_of(with_value((*section, PROBE), 1)):
        match = _UNKNOWN.search(problem)
        if match:
            return match.group(1).split(", ")
    return None


def dotted(path: tuple[str, ...]) -> str:
    return "".join(step if step == ITEM else f".{step}" for step in path).lstrip(".")


def accepted_keys() -> set[str]:
    """Every key path the builder accepts, found by probing each mapping it reads."""
    found: set[str] = set()

    def walk(section: tuple[str, ...]) -> None:
        for key in known_keys(section) or ():
            path = (*section, key)
            found.add(dotted(path))
            for inner in (path, (*path, ITEM)):
                if known_keys(inner) is not None:
                    walk(inner)

    walk(())
    return found


@pytest.fixture(scope="module")
def accepted() -> set[str]:
    keys = accepted_keys()
    # If this fails, the builder's "unknown key ... (known: ...)" message changed shape and the
    # probe above needs to follow it.
    assert {"routes", "routes[].name", "tokens.cookie.same_site"} <= keys, keys
    return keys


# -- routes.yaml ---------------------------------------------------------------------------------


def test_every_key_the_builder_accepts_is_documented(accepted: set[str]) -> None:
    missing = accepted - reference_keys()
    assert not missing, f"docs/configuration.md lacks a row for: {sorted(missing)}"


def test_every_documented_key_is_accepted_by_the_builder(accepted: set[str]) -> None:
    unknown = reference_keys() - accepted
    assert not unknown, f"docs/configuration.md documents keys the builder refuses: {unknown}"


def test_keys_documented_as_not_yet_supported_are_refused(accepted: set[str]) -> None:
    # Every planned key is supported today; a "Not yet supported" table, when one comes back,
    # must list only keys the builder still refuses.
    not_yet = documented_keys().get(NOT_YET_SECTION, set())
    now_accepted = not_yet & accepted
    assert not now_accepted, f"now supported, move them into the reference: {now_accepted}"


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(("bogus",), id="top level"),
        pytest.param(("server", "bogus"), id="in a section"),
        pytest.param(("routes", ITEM, "bogus"), id="in a route"),
    ],
)
def test_an_unknown_key_is_reported(path: tuple[str, ...]) -> None:
    assert any("unknown key 'bogus'" in p for p in problems_of(with_value(path, 1)))


def test_the_complete_example_passes_the_builder() -> None:
    config = parse_config(yaml_block_after("A complete example"), SOURCE, {})
    assert config.routes


# -- users.yaml ----------------------------------------------------------------------------------


def users_entry_keys() -> set[str]:
    prefix = "users.<name>."
    keys = documented_keys().get(USERS_SECTION, set())
    return {key.removeprefix(prefix) for key in keys if key.startswith(prefix)}


def test_every_user_field_is_documented() -> None:
    fields = {field.name for field in dataclasses.fields(User)} - {"name"}
    assert users_entry_keys() == fields


def test_the_users_yaml_example_is_accepted_with_every_documented_key() -> None:
    data = yaml.safe_load(yaml_block_after(USERS_SECTION))
    users, problems = parse_users(data)
    assert not problems
    assert set(data["users"]["alice"]) == users_entry_keys()
    assert users["alice"].scopes == ("orders:read", "orders:write")


def test_an_unknown_key_in_a_user_entry_is_reported() -> None:
    data = yaml.safe_load(yaml_block_after(USERS_SECTION))
    data["users"]["alice"]["bogus"] = 1
    _, problems = parse_users(data)
    assert any("bogus" in problem for problem in problems)


# -- the repository stands alone -----------------------------------------------------------------

# The files this test keeps free of references to the product contract outside the repository.
# Every file of the repository: a clone must stand alone, so nothing may point to a contract
# kept outside it. This file is the one exception, for the pattern below.
TRACKED = sorted(
    name
    for name in subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    if not name.endswith((".png", ".pem")) and name != "tests/test_docs.py"
)
STANDALONE = [
    "README.md",
    "SECURITY.md",
    *(str(path.relative_to(ROOT)) for path in sorted((ROOT / "docs").glob("*.md"))),
    "bench/README.md",
    "deploy/README.md",
]
_OUTSIDE = re.compile(r"\.\./shared|\bSPEC\b")


def test_no_file_refers_to_a_contract_outside_the_repository() -> None:
    found = [
        f"{name}:{number}: {line.strip()}"
        for name in TRACKED
        if (ROOT / name).is_file()
        for number, line in enumerate(
            (ROOT / name).read_text(encoding="utf-8", errors="replace").splitlines(), 1
        )
        if _OUTSIDE.search(line)
    ]
    assert not found, "\n".join(found)


_CITATION = re.compile(r"\b(docs/[\w.-]+\.md)(?:#([\w-]+))?")


def test_every_citation_of_the_docs_in_the_code_leads_to_a_heading() -> None:
    broken = []
    for name in TRACKED:
        if not name.endswith(".py"):
            continue
        for doc, anchor in _CITATION.findall((ROOT / name).read_text(encoding="utf-8")):
            target = ROOT / doc
            if not target.is_file() or (anchor and anchor not in anchors_of(target)):
                broken.append(f"{name}: {doc}#{anchor}")
    assert not broken, "\n".join(broken)


MARKDOWN = [name for name in STANDALONE if name.endswith(".md")]
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors_of(path: Path) -> set[str]:
    """The anchors GitHub derives from a Markdown file's headings."""
    anchors = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
            anchors.add(slug)
    return anchors


@pytest.mark.parametrize("name", MARKDOWN)
def test_relative_links_lead_to_a_file_and_heading_of_the_repository(name: str) -> None:
    source = ROOT / name
    broken = []
    for target in _LINK.findall(source.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target):
            continue  # http(s), mailto: not checked here
        file_part, _, anchor = target.partition("#")
        linked = (source.parent / file_part).resolve() if file_part else source
        if not linked.is_relative_to(ROOT) or not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in anchors_of(linked):
            broken.append(target)
    assert not broken, f"{name}: broken links {broken}"
