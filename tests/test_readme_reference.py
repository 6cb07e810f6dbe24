"""README.md is the reference, and this test keeps it one (issue 13, "What users see").

What it checks, against the code itself (so the README cannot drift from it):

- every public method of the classes a user touches (`perfsuite.Perf`, `Comparison`, the
  result classes, `Counts`, the `benchmark` fixture) appears in that class's section of the
  README's "Reference", written with its parameters exactly as `inspect.signature` gives them
  (annotations left out); every public property and dataclass field appears there by name;
  `perfsuite.compare` and `Settings(...)` appear with their full signatures;
- every name in `perfsuite.__all__`, every `@pytest.mark.perf` key, every `--perf-*` option
  the plugin registers (with its default where it has one) and every pytest-benchmark option
  it accepts;
- every `perfsuite` subcommand, each with every option its parser has (and the default);
- the exit codes the `perfsuite ab` and `ab-verdict` code returns;
- every path that README.md and docs/*.md name (Markdown links, and `docs/...`, `scripts/...`,
  `../shared/...` and the like) exists: `../shared/...` resolves against the repository's
  parent, where CI checks `shared` out beside the repository.

Each check returns what is missing, and the test fails with the whole list. The last tests
remove one entry from a copy of the README and check that the checks notice (so none of them
passes vacuously). Nothing here runs pytest or measures anything: it takes about a second.

Classes that the split of big modules may move are found by name anywhere in `perfsuite`
(`_find`), never through a private module path.
"""

from __future__ import annotations

import ast
import dataclasses
import glob
import importlib
import inspect
import os
import pkgutil
import re
from pathlib import Path
from typing import Any

import pytest

import perfsuite


ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# --------------------------------------------------------------------------- the README


def _text() -> str:
    return README.read_text(encoding="utf-8")


def _heading(line: str) -> int:
    """The level of a Markdown heading line (0 for any other line)."""
    m = re.match(r"^(#{1,6}) ", line)
    return len(m.group(1)) if m else 0


def _fenced(lines: list[str]) -> list[bool]:
    """Which lines are inside a ``` block (a `# comment` there is not a heading)."""
    inside, out = False, []
    for line in lines:
        if line.startswith("```"):
            inside = not inside
            out.append(True)
        else:
            out.append(inside)
    return out


def section(text: str, title: str) -> str | None:
    """The text under the first heading whose line matches the regex `title`, up to the next
    heading of the same or a higher level (None when no heading matches)."""
    lines = text.splitlines()
    code = _fenced(lines)
    for i, line in enumerate(lines):
        level = _heading(line)
        if level and not code[i] and re.search(title, line):
            end = len(lines)
            for j in range(i + 1, len(lines)):
                if not code[j] and 0 < _heading(lines[j]) <= level:
                    end = j
                    break
            return "\n".join(lines[i:end])
    return None


def reference(text: str) -> str:
    ref = section(text, r"^## Reference\s*$")
    return ref if ref is not None else ""


def _code_re(token: str) -> re.Pattern[str]:
    """`token` as it starts a code span, not as the prefix of a longer name (`--fail` is not
    found in `--fail-memory`)."""
    return re.compile("`" + re.escape(token) + r"(?![\w-])")


def table_rows(text: str) -> list[list[str]]:
    """The cells of every Markdown table row in `text` (`\\|` inside a cell is kept)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not re.match(r"^\|[-| :]+\|$", line):
            cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
            rows.append([c.strip() for c in cells])
    return rows


# --------------------------------------------------------------------------- the code


def _modules() -> list[Any]:
    """Every module of `perfsuite` (about 0.5 s: none of them imports JAX or torch)."""
    mods = [perfsuite]
    for info in pkgutil.walk_packages(perfsuite.__path__, "perfsuite."):
        mods.append(importlib.import_module(info.name))
    return mods


def _find(name: str) -> Any:
    """The object `name` defined somewhere in `perfsuite` (a private module may move)."""
    found = {}
    for mod in _modules():
        obj = vars(mod).get(name)
        if obj is None:
            continue
        home = getattr(obj, "__module__", mod.__name__)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            if not str(home).startswith("perfsuite"):
                continue
            found[id(obj)] = obj
        else:
            found[id(obj)] = obj
    if len(found) != 1:
        raise LookupError(
            f"expected exactly one `{name}` in perfsuite, found {len(found)}: the test "
            "names what the README documents; update it if the name changed."
        )
    return next(iter(found.values()))


class _Shown:
    """A default as the README writes it: its literal repr (`None`, `0.05`, `'steps'`),
    a named function or class by its name (`nullcontext`), anything else as `...`."""

    def __init__(self, value: Any):
        text = repr(value)
        try:
            ast.literal_eval(text)
        except (ValueError, SyntaxError):
            name = getattr(value, "__name__", "<lambda>")
            text = "..." if name == "<lambda>" else name
        self.text = text

    def __repr__(self) -> str:
        return self.text


def signature(fn: Any, *, drop_first: bool) -> str:
    """`(a, *, over, tolerance=0.05)`: `inspect.signature` without annotations."""
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())[1 if drop_first else 0 :]
    shown = [
        p.replace(
            annotation=inspect.Parameter.empty,
            default=p.default if p.default is inspect.Parameter.empty else _Shown(p.default),
        )
        for p in params
    ]
    return str(sig.replace(parameters=shown, return_annotation=inspect.Signature.empty))


@dataclasses.dataclass(frozen=True)
class Documented:
    """A class of the reference: where its section is, and how the README calls it."""

    name: str  # `_find(name)`, or an attribute of `perfsuite`
    heading: str  # the code span in its section's heading
    instance: str  # how the README writes an instance: `perf.measure(...)`
    constructor: bool = False  # the README shows `Class(<full signature>)`

    @property
    def cls(self) -> type:
        return getattr(perfsuite, self.name, None) or _find(self.name)


DOCUMENTED = (
    Documented("Perf", "perfsuite.Perf", "perf"),
    Documented("Comparison", "perfsuite.Comparison", "cmp"),
    Documented("Ratio", "perfsuite.Ratio", "r"),
    Documented("Measurement", "perfsuite.Measurement", "m"),
    Documented("StepStats", "perfsuite.StepStats", "stats"),
    Documented("ScalingFit", "perfsuite.ScalingFit", "fit"),
    Documented("MemoryStats", "perfsuite.MemoryStats", "mem"),
    Documented("Settings", "perfsuite.Settings", "settings", constructor=True),
    Documented("Counts", "Counts", "counts"),
    Documented("BenchmarkFixture", "BenchmarkFixture", "benchmark"),
)


def _members(cls: type) -> tuple[dict[str, str], list[str]]:
    """(`{method: the text the README must hold}`, [property and field names]) of `cls`:
    what `cls` and its perfsuite bases define (not `Mapping`'s or `object`'s), public only."""
    doc = next(d for d in DOCUMENTED if d.cls is cls)
    methods: dict[str, str] = {}
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith("perfsuite"):
            continue
        for name, raw in vars(klass).items():
            if name.startswith("_") and name != "__call__":
                continue
            if isinstance(raw, property):
                names.append(name)
            elif isinstance(raw, (staticmethod, classmethod)):
                methods[name] = (
                    f"{cls.__name__}.{name}{signature(getattr(cls, name), drop_first=False)}"
                )
            elif inspect.isfunction(raw):
                sig = signature(raw, drop_first=True)
                methods[name] = (
                    f"{doc.instance}{sig}" if name == "__call__" else f"{doc.instance}.{name}{sig}"
                )
    if dataclasses.is_dataclass(cls):
        names += [f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")]
    return methods, list(dict.fromkeys(names))


# --------------------------------------------------------------------------- the checks


def missing_class_members(text: str) -> list[str]:
    ref = reference(text)
    missing = []
    for doc in DOCUMENTED:
        body = section(ref, "`" + re.escape(doc.heading) + "`")
        if body is None:
            missing.append(f"a heading naming `{doc.heading}` in the Reference")
            continue
        methods, names = _members(doc.cls)
        for call in methods.values():
            if call not in body:
                missing.append(f"{doc.heading}: `{call}`")
        for name in names:
            if not re.search(r"`(?:[\w.]*\.)?" + re.escape(name) + r"(?![\w(])", body):
                missing.append(f"{doc.heading}: `{doc.instance}.{name}`")
        if doc.constructor:
            call = f"{doc.cls.__name__}{signature(doc.cls, drop_first=False)}"
            if call not in body:
                missing.append(f"{doc.heading}: `{call}`")
    body = section(ref, "`perfsuite.compare`") or ""
    call = f"perfsuite.compare{signature(perfsuite.compare, drop_first=False)}"
    if call not in body:
        missing.append(f"`{call}` under a heading naming `perfsuite.compare`")
    return missing


def missing_exports(text: str) -> list[str]:
    ref = reference(text)
    return [
        f"`perfsuite.{name}`"
        for name in perfsuite.__all__
        if not _code_re(f"perfsuite.{name}").search(ref)
    ]


def missing_marker_keys(text: str) -> list[str]:
    body = section(reference(text), r"`@pytest\.mark\.perf`") or ""
    keys = [str(k) for k in _find("MarkerKey")]
    missing = [
        f"marker key `{k}=` in `@pytest.mark.perf(...)`" for k in keys if f"{k}=" not in body
    ]
    rows = {r[0] for r in table_rows(body)}
    missing += [f"a row `{k}` in the marker's table" for k in keys if f"`{k}`" not in rows]
    return missing


class _Parser:
    """What `pytest_addoption` is handed, recording each option (pytest's `Parser` API)."""

    def __init__(self):
        self.options: list[tuple[list[str], dict[str, Any]]] = []

    def getgroup(self, name: str, description: str = "", after: str | None = None):
        return self

    def addoption(self, *names: str, **kwargs: Any) -> None:
        self.options.append((list(names), kwargs))

    def addini(self, *args: Any, **kwargs: Any) -> None:
        pass


def _default_text(value: Any) -> str | None:
    """What the README's default cell must contain, or None when the default is "none"/"off"
    (no value to check) or a value computed at run time (a path)."""
    if value is None or value is False or value == [] or isinstance(value, Path):
        return None
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return str(value)


def _missing_options(body: str, options: list[tuple[list[str], Any]], where: str) -> list[str]:
    """Every option has a row of `body`'s tables whose first cell names each of its flags,
    and whose second cell (the default) holds its default."""
    rows = table_rows(body)
    missing = []
    for flags, default in options:
        row = next((r for r in rows if any(_code_re(f).search(r[0]) for f in flags)), None)
        if row is None:
            missing.append(f"{where}: a row for `{flags[0]}`")
            continue
        missing += [
            f"{where}: `{f}` in the row of `{flags[0]}`"
            for f in flags
            if not _code_re(f).search(row[0])
        ]
        shown = _default_text(default)
        if len(row) < 2 or not row[1]:
            missing.append(f"{where}: the default of `{flags[0]}`")
        elif shown is not None and shown not in row[1]:
            missing.append(f"{where}: default {shown!r} of `{flags[0]}` (row says {row[1]!r})")
    return missing


def missing_pytest_options(text: str) -> list[str]:
    from perfsuite import plugin

    parser = _Parser()
    plugin.pytest_addoption(parser)
    options = [(n, kw.get("default")) for n, kw in parser.options if n[0].startswith("--perf")]
    assert options, "the plugin registered no --perf option: is this still perfsuite's plugin?"
    body = section(reference(text), r"^### pytest options") or ""
    missing = _missing_options(body, options, "pytest options")
    # pytest-benchmark's options, accepted while its plugin is not active (`add_compat_options`)
    compat = _find("PYTEST_BENCHMARK_OPTIONS")
    missing += [
        f"pytest options: `{flag}`" for flag, _ in compat if not _code_re(flag).search(body)
    ]
    return missing


def stale_options(text: str) -> list[str]:
    """`--perf-*` and `--benchmark-*` flags the README names that nothing registers (the other
    direction of drift: an option renamed or removed in the code but not in the prose)."""
    from perfsuite import plugin

    parser = _Parser()
    plugin.pytest_addoption(parser)
    known = {n for names, _ in parser.options for n in names}
    known |= {flag for flag, _ in _find("PYTEST_BENCHMARK_OPTIONS")}
    named = dict.fromkeys(re.findall(r"(?<![\w-])--(?:perf|benchmark)(?:-[a-z]+)*", text))
    return [f"`{flag}` is named but not an option" for flag in named if flag not in known]


def _subcommands() -> dict[str, Any]:
    from perfsuite import cli

    parser = cli._parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return dict(sub.choices)


def missing_subcommands(text: str) -> list[str]:
    ref = reference(text)
    missing = []
    for name, parser in _subcommands().items():
        body = section(ref, r"`perfsuite " + re.escape(name) + r"`")
        if body is None:
            missing.append(f"a heading naming `perfsuite {name}`")
            continue
        options = [
            (list(a.option_strings), a.default)
            for a in parser._actions
            if a.option_strings and "-h" not in a.option_strings
        ]
        missing += _missing_options(body, options, f"perfsuite {name}")
        for a in parser._actions:
            if not a.option_strings and a.metavar and a.metavar not in body:
                missing.append(f"perfsuite {name}: the argument {a.metavar}")
    return missing


def missing_exit_codes(text: str) -> list[str]:
    from perfsuite import ab

    body = section(reference(text), r"^### Exit codes") or ""
    rows = {r[0]: r[1] for r in table_rows(body) if len(r) > 1}
    wanted = {
        "`perfsuite ab`": [
            (ab.EXIT_OK, "no regression"),
            (ab.EXIT_REGRESSION, "regression"),
            (ab.EXIT_ERROR, "error"),
            (ab.EXIT_INCONCLUSIVE, "inconclusive"),
        ],
        "`perfsuite ab-verdict`": [
            (_find("VERDICT_GOOD"), "good"),
            (_find("VERDICT_BAD"), "bad"),
            (_find("VERDICT_SKIP"), "skip"),
            (_find("VERDICT_ABORT"), "error"),
        ],
    }
    missing = []
    for command, codes in wanted.items():
        row = rows.get(command)
        if row is None:
            missing.append(f"exit codes: a row for {command}")
            continue
        missing += [f"exit codes: {command} `{c}` {w}" for c, w in codes if f"`{c}` {w}" not in row]
    for command in ("`pytest --perf`", "`perfsuite bisect`"):
        if command not in rows:
            missing.append(f"exit codes: a row for {command}")
    return missing


def missing_quick_start(text: str) -> list[str]:
    """The quick start is exactly `make perf` and `make test` (the readme's own promise)."""
    body = section(text, r"^## Quick start") or ""
    m = re.search(r"```bash\n(.*?)```", body, re.S)
    commands = [line.split("#")[0].strip() for line in (m.group(1) if m else "").splitlines()]
    commands = [c for c in commands if c]
    return [] if commands == ["make perf", "make test"] else [f"quick start: {commands}"]


# Paths: a Markdown link's target is relative to its file; a path named in the text
# (`docs/x.md`, `scripts/y.py`, `../shared/docs/design.md`) to the repository's root. URLs,
# `.perf/...` (made by a run) and paths a command in the text writes (after `--markdown`,
# `--json`, `--out`, `-o`, `>`) are not references.
_URL = re.compile(r"[a-z][a-z0-9+.-]*://\S+")
_PATH = re.compile(
    r"(?<![\w./-])((?:\.\./shared|docs|scripts|perfsuite|src|tests|benchmarks|\.github)"
    r"/[\w./*-]*[\w*/])"
)
_OUTPUT = re.compile(r"(?:--markdown|--json|--out|--output|-o|>)[ =]$")
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def named_paths(text: str) -> list[tuple[str, bool]]:
    """(path, whether it is a Markdown link target) for every path `text` names."""
    found = [(m.group(1), True) for m in _LINK.finditer(text)]
    found = [(p, link) for p, link in found if not re.match(r"[a-z][a-z0-9+.-]*:|#", p)]
    plain = _URL.sub(" ", _LINK.sub("]", text))
    for m in _PATH.finditer(plain):
        if not _OUTPUT.search(plain[max(0, m.start() - 12) : m.start()]):
            found.append((m.group(1).rstrip("."), False))
    return found


def _exists(path: Path) -> bool:
    return bool(glob.glob(str(path))) if "*" in str(path) else path.exists()


def dangling(files: list[Path], *, shared: bool) -> list[str]:
    """Paths named in `files` that do not exist; `shared`: only those under ../shared/,
    else only the others."""
    missing = []
    for f in files:
        for path, link in named_paths(f.read_text(encoding="utf-8")):
            target = path.split("#")[0]
            if not target or target.startswith("../shared/") != shared:
                continue
            base = f.parent if link else ROOT
            if not _exists(Path(os.path.normpath(base / target))):
                missing.append(f"{os.path.relpath(f, ROOT)}: {path}")
    return missing


DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]


def _report(missing: list[str], what: str) -> str:
    return (
        f"README.md is missing {len(missing)} {what} (the Reference must list them):\n  "
        + "\n  ".join(missing)
    )


# --------------------------------------------------------------------------- the tests


def test_every_public_method_and_field_is_in_the_reference_with_its_signature():
    missing = missing_class_members(_text())
    assert not missing, _report(
        missing, "public methods/fields, written as inspect.signature gives them"
    )


def test_every_public_name_and_marker_key_is_in_the_reference():
    missing = missing_exports(_text()) + missing_marker_keys(_text())
    assert not missing, _report(missing, "public names or marker keys")


def test_every_perf_option_is_in_the_reference_with_its_default():
    missing = missing_pytest_options(_text())
    assert not missing, _report(missing, "pytest options or defaults")


def test_every_option_the_readme_names_exists():
    stale = stale_options(_text())
    assert not stale, "README.md names options that do not exist:\n  " + "\n  ".join(stale)


def test_every_perfsuite_subcommand_and_its_options_are_in_the_reference():
    missing = missing_subcommands(_text())
    assert not missing, _report(missing, "perfsuite subcommands, options or defaults")


def test_exit_codes_and_quick_start_are_the_codes_and_commands_there_are():
    missing = missing_exit_codes(_text()) + missing_quick_start(_text())
    assert not missing, _report(missing, "exit codes, or the quick start changed")


def test_every_path_named_in_readme_and_docs_exists():
    missing = dangling(DOCS, shared=False)
    assert not missing, (
        "paths named in README.md / docs/*.md that do not exist (fix the reference):\n  "
        + "\n  ".join(missing)
    )


def test_every_shared_path_named_in_readme_and_docs_exists():
    if not (ROOT.parent / "shared").is_dir():
        pytest.skip("../shared is not checked out beside the repository (CI checks it out)")
    missing = dangling(DOCS, shared=True)
    assert not missing, (
        "paths under ../shared/ named in README.md / docs/*.md that do not exist there:\n  "
        + "\n  ".join(missing)
    )


# --------------------------------------------------------------------------- the checks notice


def _edited(text: str, old: str, new: str) -> str:
    """`text` with every `old` replaced by `new` (every one: a name may be listed twice)."""
    assert old in text, f"the README no longer holds {old!r}: update this test's probe"
    return text.replace(old, new)


@pytest.mark.parametrize(
    ("old", "new", "check", "expect"),
    [
        ("max_retraces=None, ", "", missing_class_members, "perf.steps("),
        ("tolerance=0.05)", "tolerance=0.1)", missing_class_members, "tolerance=0.05"),
        ("`m.first_call_s`", "", missing_class_members, "m.first_call_s"),
        ("`counts.deterministic(key)`", "", missing_class_members, "counts.deterministic(key)"),
        ("`stats.cpu_share`", "", missing_class_members, "stats.cpu_share"),
        ("`perfsuite.AbError`", "", missing_exports, "perfsuite.AbError"),
        ("profile=None)`,\nkeywords", ")`,\nkeywords", missing_marker_keys, "profile="),
        (
            "| `--perf-fail-counts-toolchain` |",
            "| |",
            missing_pytest_options,
            "--perf-fail-counts-toolchain",
        ),
        ("| `failed` |", "| `all` |", missing_pytest_options, "'failed'"),
        ("`--benchmark-netrc`", "", missing_pytest_options, "--benchmark-netrc"),
        ("| 1800 |", "| 1900 |", missing_subcommands, "'1800'"),
        ("`--jobs N`, `-j N` |", "`--jobs N` |", missing_subcommands, "`-j`"),
        ("#### `perfsuite report`", "#### report", missing_subcommands, "perfsuite report"),
        ("`125` skip", "`126` skip", missing_exit_codes, "125"),
        ("make test   #", "make test -x   #", missing_quick_start, "make test -x"),
        ("`--perf-quick`", "`--perf-fast`", stale_options, "--perf-fast"),
    ],
)
def test_the_checks_notice_a_removed_entry(old, new, check, expect):
    text = _text()
    assert not check(text)
    missing = check(_edited(text, old, new))
    assert any(expect in m for m in missing), (old, missing)


def test_the_path_check_notices_a_dangling_reference(tmp_path):
    bad = tmp_path / "x.md"
    bad.write_text(
        "See docs/no-such-file.md, [a link](nowhere.md) and ../shared/docs/none.md; written by "
        "`perfsuite ab --markdown docs/made-by-the-run.md`; https://example.com/docs/x.md.\n"
    )
    names = [p for p, _ in named_paths(bad.read_text())]
    assert names == ["nowhere.md", "docs/no-such-file.md", "../shared/docs/none.md"]
    here = dangling([bad], shared=False)
    assert [m.split(": ")[-1] for m in here] == ["nowhere.md", "docs/no-such-file.md"], here
    assert [m.split(": ")[-1] for m in dangling([bad], shared=True)] == ["../shared/docs/none.md"]
