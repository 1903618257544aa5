"""The docs cannot drift: generated spec sections are current, links resolve, names import.

* every ``docs/envs/<family>.md`` generated section equals what ``docs/generate.py`` writes from
  the env classes now (fix: ``.venv/bin/python docs/generate.py``);
* every relative link and image in ``README.md`` and ``docs/**/*.md`` points to an existing file,
  and every ``#anchor`` to a heading of the target page;
* every repository path written as a code span exists;
* every dotted ``lobworld.*`` name in the docs imports (or names a logger), and none points at a
  deprecated location or a re-export from another layer;
* the README stays short and lists every registered id with a link to its family page.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import pathlib
import re
import sys

import gymnasium as gym
import pytest

import lobworld  # noqa: F401  (registers the ids)
import lobworld.world_models.data  # noqa: F401  (creates the lobworld.data logger the docs name)

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_MAX_BYTES = 15 * 1024


def _load_generator():
    spec = importlib.util.spec_from_file_location("lobworld_docs_generate", ROOT / "docs" / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look the module up while building the class
    spec.loader.exec_module(mod)
    return mod


generate = _load_generator()


def _pages() -> list[pathlib.Path]:
    return [README, *sorted((ROOT / "docs").rglob("*.md"))]


def _rel(p: pathlib.Path) -> str:
    return str(p.relative_to(ROOT))


# ---------------------------------------------------------------------------
# generated sections
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("family", generate.FAMILIES, ids=lambda f: f.page)
def test_generated_spec_section_is_current(family):
    path = ROOT / "docs" / "envs" / family.page
    assert path.exists(), f"{_rel(path)} is missing: run .venv/bin/python docs/generate.py"
    current = path.read_text()
    assert current.count(generate.BEGIN) == 1 and current.count(generate.END) == 1, _rel(path)
    assert generate.render_page(current, family) == current, (
        f"{_rel(path)}: the generated spec section is stale (an env docstring, config field or "
        "registered id changed): run .venv/bin/python docs/generate.py")
    # the section really is the docstring: the first line of the class docstring and every
    # config field appear in it
    section = current.split(generate.BEGIN, 1)[1].split(generate.END, 1)[0]
    mod = importlib.import_module(family.module)
    first = inspect.getdoc(getattr(mod, family.env_class)).splitlines()[0]
    assert first in section
    for f in generate.dataclasses.fields(getattr(mod, family.config_class)):
        assert f"| `{f.name}` |" in section


def test_a_changed_docstring_or_field_makes_the_section_stale(monkeypatch):
    fam = generate.FAMILIES[0]
    mod = importlib.import_module(fam.module)
    current = (ROOT / "docs" / "envs" / fam.page).read_text()
    env_cls = getattr(mod, fam.env_class)
    monkeypatch.setattr(env_cls, "__doc__", env_cls.__doc__.replace("## Rewards", "## Rewards\nA new rule."))
    assert "A new rule." in generate.render_page(current, fam) != current
    monkeypatch.undo()
    assert generate.render_page(current, fam) == current
    monkeypatch.setattr(generate, "field_docstrings", lambda cls: {"side": "changed units"})
    assert "| `side` | `'sell'` | changed units |" in generate.render_page(current, fam)


def test_render_page_replaces_only_the_generated_section():
    fam = generate.FAMILIES[0]
    page = f"# T\n\nhand-written 2026-01-01\n\n{generate.BEGIN}\nold text\n{generate.END}\n\n## Results\n\nkept\n"
    out = generate.render_page(page, fam)
    assert out.startswith("# T\n\nhand-written 2026-01-01\n\n" + generate.BEGIN + "\n## Spec\n")
    assert out.endswith(generate.END + "\n\n## Results\n\nkept\n")
    assert "old text" not in out
    assert generate.render_page(out, fam) == out  # idempotent
    with pytest.raises(ValueError, match="one generated section"):
        generate.render_page("# T\nno markers\n", fam)
    with pytest.raises(ValueError, match="one generated section"):
        generate.render_page(f"{generate.END}\n{generate.BEGIN}\n", fam)


def test_docstring_conversion_by_hand():
    doc = ("Summary line.\n\n## Rewards\nr = ``a + b`` per :class:`~lobworld.envs.core.LOBEnv`, "
           ":mod:`lobworld.envs.rng`; ``x\ny``::\n\n    r_t = 1e4 * q   # bps\n    done\n\nAfter.")
    md = generate.docstring_to_markdown(doc)
    assert md == ("Summary line.\n\n### Rewards\n\nr = `a + b` per `LOBEnv`, `lobworld.envs.rng`; `x\ny`:\n\n"
                  "```text\nr_t = 1e4 * q   # bps\ndone\n```\n\nAfter.\n")


def test_every_registered_lobworld_family_has_a_page():
    modules = {f.module for f in generate.FAMILIES}
    lob = {i: s.entry_point for i, s in gym.registry.items()
           if isinstance(s.entry_point, str) and s.entry_point.startswith("lobworld.")}
    assert lob, "no lobworld id registered"
    missing = {i: ep for i, ep in lob.items() if ep.split(":")[0] not in modules}
    assert not missing, f"ids without a docs/envs page (add a Family to docs/generate.py): {missing}"


# ---------------------------------------------------------------------------
# links
# ---------------------------------------------------------------------------
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def github_slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading text."""
    text = re.sub(r"[`*]", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: pathlib.Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in _FENCE.sub("", path.read_text()).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = github_slug(m.group(1))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def relative_links(path: pathlib.Path) -> list[str]:
    text = _FENCE.sub("", path.read_text())
    return [t for t in _LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def test_slug_and_link_parsing_by_hand(tmp_path):
    assert github_slug("Training (`lobworld train`, `lobworld.agents.training`)") == \
        "training-lobworld-train-lobworldagentstraining"
    assert github_slug("All envs (`lobworld bench`)") == "all-envs-lobworld-bench"
    p = tmp_path / "a.md"
    p.write_text("# A b\n## A b\n```\n# not a heading\n[x](inside_fence.md)\n```\n"
                 "[l](b.md#a-b) ![i](img.png) [w](https://x.org/y) [m](mailto:a@b) [s](#a-b-1)\n")
    assert anchors(p) == {"a-b", "a-b-1"}
    assert relative_links(p) == ["b.md#a-b", "img.png", "#a-b-1"]


@pytest.mark.parametrize("page", _pages(), ids=_rel)
def test_relative_links_resolve(page):
    bad = []
    for target in relative_links(page):
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            bad.append(f"{target} (no file {dest.relative_to(ROOT) if ROOT in dest.parents else dest})")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target} (no heading #{anchor} in {_rel(dest)})")
    assert not bad, f"{_rel(page)}: broken links: {bad}"


def test_every_png_in_docs_is_shown_somewhere():
    text = "\n".join(p.read_text() for p in _pages())
    unused = [p.name for p in sorted((ROOT / "docs").glob("*.png")) if f"{p.name})" not in text]
    assert not unused, f"PNGs in docs/ no page links to: {unused}"


_PATH_SPAN = re.compile(r"`((?:envs|world_models|agents|scenarios|lobworld|benchmarks|tests|docs|\.ci)/[\w/.-]+)`")


@pytest.mark.parametrize("page", _pages(), ids=_rel)
def test_repository_paths_in_code_spans_exist(page):
    """A code span that is a repository path (`benchmarks/bench_envs.py`) names an existing file or folder
    (relative to the repository root; `lobworld/<package>/...` is the installed view of `<package>/...`)."""
    bad = []
    for path in sorted(set(_PATH_SPAN.findall(page.read_text()))):
        candidates = [ROOT / path]
        if path.startswith("lobworld/"):
            candidates.append(ROOT / path.removeprefix("lobworld/"))
        if not any(c.exists() for c in candidates):
            bad.append(path)
    assert not bad, f"{_rel(page)}: paths that do not exist: {bad}"


# ---------------------------------------------------------------------------
# module references
# ---------------------------------------------------------------------------
_NAME = re.compile(r"\blobworld(?:\.[A-Za-z_]\w*)+")


def _resolve(name: str):
    """(object, module name it was found in) for a dotted name, importing the longest module prefix."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        modname = ".".join(parts[:i])
        try:
            obj = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name is not None and not modname.startswith(e.name) and e.name != modname:
                raise
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj, modname
    raise ModuleNotFoundError(name)


def _layer(modname: str) -> str:
    return ".".join(modname.split(".")[:2])


@pytest.mark.parametrize("page", _pages(), ids=_rel)
def test_lobworld_names_import_at_their_current_location(page):
    bad = []
    for name in sorted(set(_NAME.findall(page.read_text()))):
        try:
            obj, modname = _resolve(name)
        except (ImportError, AttributeError) as e:
            if name in logging.root.manager.loggerDict:  # a logger's name, e.g. lobworld.data
                continue
            bad.append(f"{name} ({type(e).__name__}: {e})")
            continue
        mod = sys.modules[modname]
        if (mod.__doc__ or "").startswith("Deprecated location"):
            bad.append(f"{name} (deprecated location: {mod.__doc__.splitlines()[0]})")
            continue
        home = getattr(obj, "__module__", None) if (inspect.isclass(obj) or inspect.isfunction(obj)) else None
        if home and home.startswith("lobworld.") and _layer(home) != _layer(name):
            bad.append(f"{name} (a re-export: defined in {home})")
    assert not bad, f"{_rel(page)}: stale lobworld names: {bad}"


# ---------------------------------------------------------------------------
# the README itself
# ---------------------------------------------------------------------------
def test_readme_is_short():
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; keep it under {README_MAX_BYTES} (move detail to docs/)"


def test_readme_env_table_links_every_registered_id_to_its_family_page():
    text = README.read_text()
    rows: dict[str, str] = {}
    for m in re.finditer(r"^\|\s*`(LOB-[\w-]+)`.*$", text, re.M):  # every table row starting with an id
        rows[m.group(1)] = rows.get(m.group(1), "") + m.group(0) + "\n"
    page_of = {f.module: f.page for f in generate.FAMILIES}
    for env_id, s in gym.registry.items():
        if not (isinstance(s.entry_point, str) and s.entry_point.startswith("lobworld.")):
            continue
        assert env_id in rows, f"README env table has no row for {env_id}"
        page = page_of[s.entry_point.split(":")[0]]
        assert f"(docs/envs/{page})" in rows[env_id], f"no README row of {env_id} links docs/envs/{page}"
