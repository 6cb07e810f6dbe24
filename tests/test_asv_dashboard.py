"""End to end: asv history over two commits, `asv publish`, and the dashboard in a browser.

In a temporary git repository holding a copy of this checkout (tracked and untracked files,
so uncommitted work is tested too) with two commits, `asv run --python=same --quick` runs a
small selection of the real benchmarks on each commit, `asv publish` renders the dashboard,
and headless Chromium (`_chromium.py`: the DevTools protocol on a pipe, no extra packages) loads
it from a local HTTP server: no script errors, every selected benchmark listed on the summary
grid with its plot, and a graph page drawing two commits. Screenshots are kept under
`.perf/artifacts/` (uploaded by CI).

The dashboard loads jQuery, Flot, Bootstrap and friends from public CDNs, which CI machines
cannot reach; the test serves a copy whose `index.html` points at the same libraries as
packaged by Debian instead (installed with Chromium). Chromium and those packages are
installed with apt-get when missing (root or passwordless sudo); where that is impossible
the test is skipped with the reason.
"""

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from _chromium import (
    APT_PACKAGES,
    VENDOR,
    DevTools,
    find_chromium,
    install_browser,
    missing_vendor_files,
    page_errors,
)


ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / ".perf" / "artifacts"
MACHINE = "perfsuite-dashboard-test"

# One cheap parameter combination (or a few) of each suite: enough to exercise every module
# through asv without paying for the full CPU history here.
SELECTION = [
    r"bench_transforms\.ApplyTransforms\.time_apply\(24, ",
    r"bench_transforms\.TransformSpeedup\.track_speedup\(24, 'tree_at'\)",
    r"bench_train_step\.TrainStep\.time_step\('cached', 'tiny-2L'\)",
    r"bench_spd\.SPDStep\.time_step\('tms_5-2', 'baseline', 'cpu'\)",
]
BENCHMARKS = [
    "bench_transforms.ApplyTransforms.time_apply",
    "bench_transforms.TransformSpeedup.track_speedup",
    "bench_train_step.TrainStep.time_step",
    "bench_spd.SPDStep.time_step",
]
# A <script> or <link> tag loading a resource from another host.
_EXTERNAL = re.compile(r"""<(script|link)\b([^>]*?)\s(src|href)="(https?://[^"]+)"[^>]*>""")


@pytest.fixture(scope="module")
def chromium() -> str:
    if find_chromium() is None or missing_vendor_files():
        install_browser()
    path = find_chromium()
    if path is None:
        pytest.fail("apt-get installed chromium, but no Chromium binary is on PATH")
    if missing := missing_vendor_files():
        pytest.fail(f"apt-get installed {APT_PACKAGES}, but these files are missing: {missing}")
    return path


def _unselected_summary_404(error: str) -> bool:
    """The grid asks for the summary of every discovered benchmark; those outside SELECTION
    never ran here, so they have none (a full `asv run` has them all)."""
    m = re.search(r"status of 404 .*/graphs/summary/([^/?]+)\.json", error)
    return m is not None and m.group(1) not in BENCHMARKS


# ----------------------------------------------------------------------------- asv


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "perfsuite test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "perfsuite test",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
    }
    proc = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


def _copy_checkout(dest: Path) -> None:
    """Tracked and untracked (not ignored) files of this checkout, as they are on disk."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("the asv dashboard test needs git and a git checkout of perfsuite")
    listed = _git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for rel in sorted(set(listed.split("\0")) - {""}):
        src = ROOT / rel
        if src.is_file():  # tracked files deleted in the working tree are left out
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


def _asv(repo: Path, home: Path, *args: str, timeout: float = 900) -> str:
    env = {**os.environ, "HOME": str(home)}  # asv keeps ~/.asv-machine.json: keep it in tmp
    proc = subprocess.run(
        [sys.executable, "-m", "asv", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"asv {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> tuple[Path, list[str]]:
    """A two-commit history benchmarked with `asv run --python=same --quick`, published."""
    tmp = tmp_path_factory.mktemp("asv_dashboard")
    repo, home = tmp / "repo", tmp / "home"
    home.mkdir()
    _copy_checkout(repo)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "first commit (working tree copy)")
    with (repo / "README.md").open("a") as f:
        f.write("\nSecond commit for the asv dashboard test.\n")
    _git(repo, "commit", "-q", "-a", "-m", "second commit")
    commits = _git(repo, "rev-list", "--reverse", "HEAD").split()
    assert len(commits) == 2

    _asv(repo, home, "machine", "--yes", "--machine", MACHINE)
    bench_args = [arg for regex in SELECTION for arg in ("--bench", regex)]
    for commit in commits:
        _git(repo, "checkout", "-q", commit)
        _asv(
            repo,
            home,
            "run",
            "--python=same",
            "--quick",
            "--show-stderr",
            "--machine",
            MACHINE,
            f"--set-commit-hash={commit}",
            *bench_args,
        )
    _git(repo, "checkout", "-q", "main")
    _asv(repo, home, "publish")
    return repo / ".asv" / "html", commits


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def _offline_copy(html: Path, dest: Path) -> Path:
    """The published dashboard with its CDN scripts and styles replaced by local copies.

    Subresource-integrity hashes are dropped with the URLs: Debian's builds are the same
    libraries (same major versions) but not the same bytes.
    """
    shutil.copytree(html, dest)
    vendor = dest / "_vendor"
    vendor.mkdir()
    unknown = []

    def local(m: re.Match) -> str:
        tag, before, attr, url = m.groups()
        for key, path in VENDOR.items():
            if key in url:
                name = url.rsplit("/", 1)[-1]
                target = vendor / name
                if path is None:
                    target.write_text("/* not vendored: bar charts only */\n")
                else:
                    shutil.copy(path, target)
                return f'<{tag}{before} {attr}="_vendor/{name}">'
        unknown.append(url)
        return m.group(0)

    index = dest / "index.html"
    index.write_text(_EXTERNAL.sub(local, index.read_text()))
    assert not unknown, f"asv's dashboard loads resources this test cannot serve: {unknown}"
    return dest


@pytest.fixture
def dashboard_url(published, chromium, tmp_path):
    html, _ = published
    served = _offline_copy(html, tmp_path / "html")
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# ----------------------------------------------------------------------------- the test


@pytest.mark.slow
def test_asv_results_cover_both_commits(published):
    html, commits = published
    results = html.parent / "results" / MACHINE
    files = [p for p in results.glob("*.json") if p.name != "machine.json"]
    assert {p.name[:8] for p in files} == {c[:8] for c in commits}
    index = json.loads((html / "index.json").read_text())
    for name in BENCHMARKS:
        assert name in index["benchmarks"]


@pytest.mark.slow
def test_asv_dashboard_renders_in_chromium(chromium, published, dashboard_url, tmp_path):
    _, commits = published
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser = DevTools(chromium, tmp_path / "chromium-profile")
    try:
        browser.open_page()
        browser.send("Page.navigate", {"url": dashboard_url})
        # The summary grid: one container per benchmark, each drawing its own small plot.
        names = browser.wait_for(
            "(() => { const t = [...document.querySelectorAll('.benchmark-text')]"
            ".map(e => e.textContent.trim());"
            f" return {json.dumps(BENCHMARKS)}.every(b => t.some(x => b.endsWith(x) || x.endsWith(b)))"
            " ? t : null; })()"
        )
        assert names, "the summary grid never listed the benchmarks: " + repr(
            browser.evaluate("document.body.innerText.slice(0, 2000)")
        )
        plots = browser.wait_for(
            "document.querySelectorAll('.benchmark-plot canvas').length >= "
            f"{len(BENCHMARKS)} && document.querySelectorAll('.benchmark-plot canvas').length"
        )
        grid_png = ARTIFACTS / "asv-dashboard-grid.png"
        browser.screenshot(grid_png)
        assert plots, "the summary grid drew no plots"
        grid_errors = page_errors(browser.events())

        # A graph page: the main plot with one point per benchmarked commit.
        name = BENCHMARKS[0]
        browser.send("Page.navigate", {"url": f"{dashboard_url}#{name}"})
        points = browser.wait_for(
            "(() => { const p = window.$ && $('#main-graph').data('plot');"
            " if (!p) return null;"
            " const n = p.getData().map(s => s.data.filter(d => d[1] !== null).length);"
            f" return Math.max(0, ...n) >= {len(commits)} ? n : null; }})()"
        )
        graph_png = ARTIFACTS / "asv-dashboard-graph.png"
        browser.screenshot(graph_png)
        page_text = browser.evaluate("document.body.innerText")
        graph_errors = page_errors(browser.events())
    finally:
        browser.close()
    print(f"\nasv dashboard screenshots: {grid_png} {graph_png}")
    errors = [e for e in grid_errors + graph_errors if not _unselected_summary_404(e)]
    assert not errors, "\n".join(errors)
    assert points, f"the graph of {name} does not show {len(commits)} commits"
    assert name.split(".")[-1] in page_text
