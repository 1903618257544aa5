"""Write the generated spec sections of ``docs/envs/<family>.md`` from the env classes.

Run from the repository root::

    .venv/bin/python docs/generate.py          # rewrite every generated section
    .venv/bin/python docs/generate.py --check  # exit 1 (and name the page) if one is stale

Each family page holds one generated section between :data:`BEGIN` and :data:`END`: the
registered ids of the family (read from Gymnasium's registry after ``import lobworld``), the
env class docstring (the spec, in Gymnasium's sections) converted from reST-flavoured text
to Markdown, and a table of the family's config dataclass fields with their defaults and
field docstrings. Everything outside the markers is hand-written (dated results, design
notes) and is left as it is. ``tests/test_docs.py`` fails when a section is stale.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import inspect
import pathlib
import re
import sys
import textwrap

DOCS = pathlib.Path(__file__).resolve().parent
ENVS_DIR = DOCS / "envs"

BEGIN = "<!-- BEGIN GENERATED SPEC: written by docs/generate.py from the env docstrings; do not edit by hand -->"
END = "<!-- END GENERATED SPEC -->"


@dataclasses.dataclass(frozen=True)
class Family:
    """One env family: its docs page and the classes its spec is read from."""

    page: str
    """File name under ``docs/envs/``."""
    title: str
    """Page title (first heading), used when the page is created."""
    module: str
    """Module defining the env classes (the registry's entry-point module)."""
    env_class: str
    """Single-env class whose docstring is the spec."""
    config_class: str
    """Frozen dataclass of the env's settings (field docstrings give the units)."""


FAMILIES: tuple[Family, ...] = (
    Family("execution.md", "Execution environments", "lobworld.envs.execution", "ExecutionEnv", "ExecutionConfig"),
    Family("market_making.md", "Market making", "lobworld.envs.market_making", "MarketMakingEnv",
           "MarketMakingConfig"),
    Family("dark_pool.md", "Dark-pool routing", "lobworld.envs.dark_pool", "DarkPoolEnv", "DarkPoolConfig"),
    Family("tick.md", "Tick-level environments", "lobworld.envs.tick", "TickMarketMakingEnv", "TickMarketMakingConfig"),
)


# ---------------------------------------------------------------------------
# reST-flavoured docstring text -> Markdown
# ---------------------------------------------------------------------------
_ROLE = re.compile(r":(?:class|mod|func|meth|attr|data|exc|obj):`(~?)([^`]+)`")
_DOUBLE_BACKTICK = re.compile(r"``(.+?)``", re.DOTALL)


def _role(m: re.Match) -> str:
    target = m.group(2)
    if m.group(1) == "~":  # Sphinx's "~": show the last component only
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


def _inline(line: str) -> str:
    return _DOUBLE_BACKTICK.sub(r"`\1`", _ROLE.sub(_role, line))


def docstring_to_markdown(doc: str, heading_level: int = 3) -> str:
    """Markdown for a cleaned docstring (``inspect.cleandoc`` applied).

    ``## Section`` headings become ``heading_level`` headings (with a blank line after),
    ``` ``code`` ``` (also across a line break) and Sphinx roles become code spans, and a
    paragraph ending in ``::`` introduces a fenced literal block made of the indented lines
    that follow (as in reST). Everything else (tables, lists) is already Markdown and passes
    through unchanged.
    """
    lines = doc.splitlines()
    segments: list[tuple[bool, list[str]]] = [(False, [])]  # (is literal block, lines)
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^(#+)\s+(.*)$", line)
        if m:
            segments[-1][1].extend(["", "#" * heading_level + " " + m.group(2).strip(), ""])
            i += 1
            continue
        if line.rstrip().endswith("::") and not line.lstrip().startswith("|"):
            stripped = line.rstrip()[:-2].rstrip()
            if stripped:
                segments[-1][1].append(stripped + ":")
            i += 1
            while i < len(lines) and not lines[i].strip():
                i += 1
            block: list[str] = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
                block.append(lines[i])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            segments.append((True, ["```text", textwrap.dedent("\n".join(block)), "```"]))
            segments.append((False, []))
            continue
        segments[-1][1].append(line)
        i += 1
    parts = []
    for literal, seg in segments:
        text = "\n".join(seg)
        parts.append(text if literal else _inline(text).strip("\n"))
    text = "\n\n".join(p for p in parts if p.strip())
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


# ---------------------------------------------------------------------------
# Config dataclass -> table (field docstrings read from the source)
# ---------------------------------------------------------------------------
def field_docstrings(cls: type) -> dict[str, str]:
    """``{field: docstring}`` from the string literal under each annotated class attribute."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for stmt, nxt in zip(body, body[1:]):
        if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            docs[stmt.target.id] = inspect.cleandoc(nxt.value.value)
    return docs


def _cell(text: str) -> str:
    return _inline(" ".join(text.split())).replace("|", "\\|")


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "(required)"
    return "`" + repr(value).replace("|", "\\|") + "`"


def config_table(cls: type) -> str:
    docs = field_docstrings(cls)
    rows = ["| field | default | meaning (units) |", "|---|---|---|"]
    for f in dataclasses.fields(cls):
        rows.append(f"| `{f.name}` | {_default(f)} | {_cell(docs.get(f.name, ''))} |")
    return "\n".join(rows) + "\n"


# ---------------------------------------------------------------------------
# One page
# ---------------------------------------------------------------------------
def registered_ids(module: str) -> list[tuple[str, str, str, dict]]:
    """``(id, entry_point, vector_entry_point, kwargs)`` of every id registered with its entry point in
    ``module``, in registration order."""
    import gymnasium as gym

    import lobworld  # noqa: F401  (registers the ids)

    rows = []
    for env_id, spec in gym.registry.items():
        ep = spec.entry_point if isinstance(spec.entry_point, str) else ""
        if ep.split(":")[0] == module:
            vep = spec.vector_entry_point if isinstance(spec.vector_entry_point, str) else ""
            rows.append((env_id, ep, vep, dict(spec.kwargs)))
    return rows  # registration order (the EnvSpec table's order)


def _env_spec(env_id: str):
    """The id's entry of the ``EnvSpec`` table (``lobworld.envs.spec``), None without one."""
    try:
        from lobworld.envs.spec import find_spec
    except ImportError:
        return None
    return find_spec(env_id)


def _id_rows(ids: list[tuple[str, str, str, dict]]) -> list[str]:
    specs = {env_id: _env_spec(env_id) for env_id, *_ in ids}
    with_table = all(s is not None for s in specs.values())
    if with_table:
        rows = ["| id | summary | metric | baselines | registered kwargs |", "|---|---|---|---|---|"]
    else:
        rows = ["| id | registered kwargs |", "|---|---|"]
    for env_id, _, _, kwargs in ids:
        kw = ", ".join(f"`{k}={v!r}`" for k, v in sorted(kwargs.items())) or "(class defaults)"
        if with_table:
            s = specs[env_id]
            direction = "lower" if s.lower_is_better else "higher"
            metric = f"`{s.metric}` ({s.metric_unit}, {direction} is better)"
            names = ", ".join(f"`{b}`" for b in s.baselines)
            rows.append(f"| `{env_id}` | {_cell(s.summary)} | {metric} | {names} | {kw} |")
        else:
            rows.append(f"| `{env_id}` | {kw} |")
    return rows


def spec_section(family: Family) -> str:
    """The generated Markdown of one family (without the markers)."""
    mod = importlib.import_module(family.module)
    env_cls = getattr(mod, family.env_class)
    cfg_cls = getattr(mod, family.config_class)
    ids = registered_ids(family.module)
    if not ids:
        raise ValueError(f"no registered env id has its entry point in {family.module}")
    eps = sorted({(ep, vep) for _, ep, vep, _ in ids})
    parts = [
        "## Spec",
        "",
        f"*Generated by `docs/generate.py` from the docstrings of `{family.module}.{family.env_class}` "
        f"and `{family.config_class}` and from the registered ids; edit those and rerun it.*",
        "",
        "### Registered ids",
        "",
        *_id_rows(ids),
        "",
        "Faces: " + "; ".join(f"`gym.make` -> `{ep}`, `gym.make_vec(..., vectorization_mode=\"vector_entry_point\")` "
                              f"-> `{vep}`" for ep, vep in eps)
        + "; SB3: `lobworld.envs.make_sb3_vec_env(id, n_envs, seed)`.",
        "",
        docstring_to_markdown(inspect.getdoc(env_cls) or "").rstrip(),
        "",
        f"### Configuration (`{family.config_class}`)",
        "",
        _inline(inspect.getdoc(cfg_cls) or "").rstrip(),
        "",
        config_table(cfg_cls).rstrip(),
    ]
    return "\n".join(parts) + "\n"


def render_page(current: str | None, family: Family) -> str:
    """``current`` page text with its generated section replaced (a new page if None)."""
    block = f"{BEGIN}\n{spec_section(family)}{END}"
    if current is None:
        return f"# {family.title}\n\n{block}\n"
    if current.count(BEGIN) != 1 or current.count(END) != 1 or current.index(BEGIN) > current.index(END):
        raise ValueError(f"docs/envs/{family.page}: expected one generated section between the markers "
                         f"{BEGIN!r} and {END!r}")
    head, rest = current.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + block + tail


def stale_pages() -> list[str]:
    """Family pages whose generated section differs from what the code gives now."""
    stale = []
    for family in FAMILIES:
        path = ENVS_DIR / family.page
        current = path.read_text() if path.exists() else None
        if current is None or render_page(current, family) != current:
            stale.append(f"docs/envs/{family.page}")
    return stale


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 if a generated section is stale, write nothing")
    args = p.parse_args(argv)
    if args.check:
        stale = stale_pages()
        for page in stale:
            print(f"stale: {page} (run .venv/bin/python docs/generate.py)", file=sys.stderr)
        return 1 if stale else 0
    ENVS_DIR.mkdir(exist_ok=True)
    for family in FAMILIES:
        path = ENVS_DIR / family.page
        current = path.read_text() if path.exists() else None
        new = render_page(current, family)
        if new != current:
            path.write_text(new)
            print(f"wrote docs/envs/{family.page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
