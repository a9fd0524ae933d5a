"""Every shell command and Python snippet in README.md and docs/*.md runs as written.

How a page is run (one test per page, its blocks in order, in one temporary folder, sharing one
Python namespace, so a block may use what an earlier block of the page built):

- ```python: plain code is executed; a block of ``>>>`` prompts is a doctest (output compared,
  with ELLIPSIS and NORMALIZE_WHITESPACE).
- ```bash / ```sh: every line is a shell command (``\\`` continues a line).
- ```console: lines starting with ``$ `` are commands, the lines below them are sample output and
  are not compared (timings, progress bars) — except that a command whose output starts with
  ``tokembed ...: error:`` must fail with exit code 2 and print that one error line.
- ``tokembed`` and ``python`` on the command line are this checkout's CLI and this interpreter; a shell
  variable assigned in one block (``M=...``) is kept for the later blocks of the page.

Markers: an HTML comment on the line just above the opening fence (a reader of the rendered page
does not see it):

- ``<!-- docs-test: skip REASON -->``: the block is not run. Each skipped block is its own skipped
  test (``test_docs_block_not_run``), so ``pytest -ra`` lists every one with its reason.
- ``<!-- docs-test: slow REASON -->``: the block takes long; it runs only in the page's second,
  slow-marked test (``page+slow``), and the fast test prints how many it left out. A block that
  needs the output of a slow block must be marked slow too.
- ``<!-- docs-test: file NAME -->``: the block (TOML, text) is written to NAME in the page folder,
  for the commands that read it.

Other fences (text, toml without a marker, output) are not code and are not run.
"""

from __future__ import annotations

import doctest
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN_LANGS = {"python", "bash", "sh", "console"}
#: fences that hold no code to run: sample output, file contents, layouts
NOT_CODE = {"", "text", "toml", "yaml", "json", "csv", "html", "diff"}
_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.S | re.M)
_MARKER = re.compile(r"<!--\s*docs-test:\s*(?P<kind>skip|slow|file)\b\s*(?P<arg>.*?)\s*-->\s*$")
_ERROR_LINE = re.compile(r"^tokembed(?: [\w-]+)*: error: ")


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    body: str
    marker: str | None = None  # skip, slow, file or None
    arg: str = ""

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    """The fenced blocks of a page with the docs-test marker on the line above each (if any)."""
    text = page.read_text(encoding="utf-8")
    out = []
    for m in _FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mk = _MARKER.search(before)
        body = textwrap.dedent(m.group("body"))
        out.append(Block(page, line, m.group("lang").lower(), body, mk and mk["kind"], mk["arg"] if mk else ""))
    return out


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _page_params():
    """(page, with_slow) per page; a page with slow blocks gets a second, slow-marked run that includes them."""
    params = []
    for page in PAGES:
        params.append(pytest.param(page, False, id=_page_id(page)))
        if any(b.marker == "slow" for b in blocks_of(page)):
            marks = [pytest.mark.slow, pytest.mark.timeout(1800)]  # whole training/study runs on a loaded machine
            params.append(pytest.param(page, True, marks=marks, id=_page_id(page) + "+slow"))
    return params


def _skipped_params():
    return [
        pytest.param(b, id=b.where)
        for page in PAGES
        for b in blocks_of(page)
        if b.marker == "skip"
    ]


# -- shell ------------------------------------------------------------------------------------


def _commands(block: Block) -> list[tuple[str, str]]:
    """(command, expected output) pairs; console output is only used to know an error is expected."""
    lines = block.body.splitlines()
    cmds: list[list] = []
    i = 0
    while i < len(lines):
        ln = lines[i]
        if block.lang == "console" and not ln.startswith("$ "):
            if cmds:
                cmds[-1][1].append(ln)
            i += 1
            continue
        cmd = ln[2:] if block.lang == "console" else ln
        while cmd.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            cmd = cmd.rstrip()[:-1] + " " + lines[i].strip()
        if cmd.strip() and not cmd.lstrip().startswith("#"):
            cmds.append([cmd, []])
        i += 1
    return [(c, "\n".join(o)) for c, o in cmds]


def _shell_script(block: Block) -> str:
    parts = ["set -e"]
    for cmd, output in _commands(block):
        first = output.strip().splitlines()[0] if output.strip() else ""
        if _ERROR_LINE.match(first):  # the docs show this command failing: it must fail the same way
            prefix = first.split(": error: ")[0] + ": error: "
            parts.append(
                f"if {{ {cmd} ; }} 2>.docs_err; then echo 'docs-test: expected an error from: {_q(cmd)}' >&2; exit 97; fi\n"
                f"test \"$(wc -l < .docs_err)\" -eq 1 && grep -qF {_shell_quote(prefix)} .docs_err "
                f"|| {{ cat .docs_err >&2; echo 'docs-test: expected one line {_q(prefix)}...' >&2; exit 98; }}"
            )
        else:
            parts.append(cmd)
    return "\n".join(parts) + "\n"


def _q(s: str) -> str:
    return s.replace("'", "")


def _shell_quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    """``tokembed`` (this checkout's CLI) and ``python`` (this interpreter) for the shell blocks."""
    d = tmp_path_factory.mktemp("bin")
    for name, line in [("tokembed", f'exec "{sys.executable}" -m tokembed "$@"'), ("python", f'exec "{sys.executable}" "$@"')]:
        (d / name).write_text(f"#!/bin/sh\n{line}\n")
        (d / name).chmod(0o755)
    return d


def _run_shell(block: Block, cwd: Path, env: dict, assignments: list[str]) -> None:
    script = "\n".join(assignments) + "\n" + _shell_script(block)
    # a slow page's block may take as long as its test allows; pytest-timeout stops a fast page first
    r = subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=1700)
    if r.returncode != 0:
        pytest.fail(
            f"{block.where}: shell block failed (exit {r.returncode})\n--- script\n{script}\n--- stdout\n"
            f"{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-3000:]}"
        )
    assignments += [c for c, _ in _commands(block) if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=\S*$", c.split("#")[0].strip())]


# -- python -----------------------------------------------------------------------------------


def _run_python(block: Block, ns: dict) -> None:
    if block.body.lstrip().startswith(">>>"):
        test = doctest.DocTestParser().get_doctest(block.body, ns, block.where, str(block.page), block.line)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        report: list[str] = []
        runner.run(test, out=report.append, clear_globs=False)
        ns.update(test.globs)  # DocTest works on a copy: carry its names to the next blocks
        if runner.failures:
            pytest.fail(f"{block.where}: doctest failed\n" + "".join(report)[-4000:])
        return
    try:
        exec(compile(block.body, block.where, "exec"), ns)
    except Exception as e:
        pytest.fail(f"{block.where}: python block raised {type(e).__name__}: {e}")


# -- tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("page", "with_slow"), _page_params())
def test_docs_page_runs_as_written(page, with_slow, tmp_path, monkeypatch, shim, capsys):
    env = dict(os.environ)
    env["PATH"] = f"{shim}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    monkeypatch.chdir(tmp_path)
    ns: dict = {"__name__": "__docs__"}
    assignments: list[str] = []
    ran = slow = 0
    for b in blocks_of(page):
        if b.marker == "skip":
            continue
        if b.marker == "slow" and not with_slow:
            slow += 1
            continue
        if b.marker == "file":
            (tmp_path / b.arg).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / b.arg).write_text(b.body, encoding="utf-8")
            continue
        if b.lang not in RUN_LANGS:
            continue
        if b.lang == "python":
            _run_python(b, ns)
        else:
            _run_shell(b, tmp_path, env, assignments)
        ran += 1
    with capsys.disabled():
        left = f", {slow} slow block(s) left to the '+slow' run (-m slow)" if slow else ""
        print(f"\n[docs] {_page_id(page)}: {ran} block(s) run{left}", end="")


@pytest.mark.parametrize("block", _skipped_params())
def test_docs_block_not_run(block):
    """Each block marked ``docs-test: skip`` is reported with its reason (never a silent skip)."""
    assert block.arg, f"{block.where}: a docs-test skip marker needs a reason"
    for ref in re.findall(r"tests/[\w/.]*\w", block.arg):  # a reason that points at tests must point at real ones
        assert (ROOT / ref).exists(), f"{block.where}: the skip reason names {ref}, which does not exist"
    pytest.skip(f"{block.where} [{block.lang}] not run: {block.arg}")


def test_markers_are_attached_and_known():
    """A marker must sit right above a fence (else it would silently do nothing) and name a known kind."""
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        attached = {b.line - 1 for b in blocks_of(page) if b.marker}
        for n, ln in enumerate(text.splitlines(), start=1):
            if "docs-test" in ln:
                assert _MARKER.search(ln), f"{_page_id(page)}:{n}: unknown docs-test marker {ln.strip()!r}"
                assert n in attached, f"{_page_id(page)}:{n}: docs-test marker not on the line above a fence"


def test_every_fence_language_is_known():
    """A fence tagged ``py``, ``shell``, ``zsh``... would silently not run: each tag is code or named as not code."""
    for page in PAGES:
        for b in blocks_of(page):
            assert b.lang in RUN_LANGS | NOT_CODE, f"{b.where}: fence language {b.lang!r}; use python/bash/console or text"


def test_every_page_with_code_runs_some():
    for page in PAGES:
        code = [b for b in blocks_of(page) if b.lang in RUN_LANGS]
        runnable = [b for b in code if b.marker != "skip"]
        assert runnable or not code, f"{_page_id(page)}: no block is run; mark fewer blocks skip"


def test_reliability_table_names_real_tests():
    """Every ``FILE::TEST`` in docs/reliability.md is a test function defined in that file."""
    table = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    refs = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", table)
    assert len(refs) >= 20
    for file, name in refs:
        source = (ROOT / file).read_text(encoding="utf-8") if (ROOT / file).is_file() else ""
        assert re.search(rf"^\s*def {name}\(", source, re.M), f"docs/reliability.md names {file}::{name}, which does not exist"


def test_the_harness_fails_a_wrong_block(tmp_path, shim):
    """A doctest whose output differs, a failing command, and a command the docs show failing that
    succeeds must each fail the page; a documented error that happens passes."""
    env = {**os.environ, "PATH": f"{shim}{os.pathsep}{os.environ.get('PATH', '')}"}
    env["PYTHONPATH"] = str(ROOT / "src")
    page = ROOT / "README.md"
    shown_error = "$ tokembed neighbors missing.vec x\ntokembed neighbors: error: missing.vec: no such file\n"
    _run_shell(Block(page, 1, "console", shown_error), tmp_path, env, [])  # fails as shown: passes
    wrong = [
        Block(page, 1, "console", "$ true\ntokembed neighbors: error: this was supposed to fail\n"),
        Block(page, 1, "bash", "false\n"),
    ]
    for b in wrong:
        with pytest.raises(pytest.fail.Exception):
            _run_shell(b, tmp_path, env, [])
    with pytest.raises(pytest.fail.Exception, match="doctest failed"):
        _run_python(Block(page, 1, "python", ">>> 1 + 1\n3\n"), {})
    with pytest.raises(pytest.fail.Exception, match="ZeroDivisionError"):
        _run_python(Block(page, 1, "python", "1 / 0\n"), {})
