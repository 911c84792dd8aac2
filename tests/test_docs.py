"""Docs that cannot drift: every Python block in docs/ runs, every hook is documented."""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_sdk import hookspecs

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _pages_with_code() -> list[Path]:
    return sorted(p for p in DOCS.glob("*.md") if BLOCK.search(p.read_text()))


SERVER = re.compile(r"<!-- docs-test: (\w+) -->")


@contextlib.contextmanager
def _page_servers(text: str) -> Iterator[dict[str, str]]:
    """Loopback servers a page asks for with ``<!-- docs-test: moto -->`` / ``azurite``; their env vars."""
    from mlops_sdk.testing import cloud_servers

    env: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        for name in SERVER.findall(text):
            if name == "moto":
                env.update(stack.enter_context(cloud_servers.start_or_skip(cloud_servers.MotoServer.start)).env())
                # nothing of the developer's own AWS setup: its endpoints or profiles would win
                env.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
            elif name == "azurite":
                env.update(stack.enter_context(cloud_servers.start_or_skip(cloud_servers.AzuriteServer.start)).env())
            else:
                raise AssertionError(f"unknown docs-test server {name!r}")
        yield env


@pytest.mark.parametrize("page", _pages_with_code(), ids=lambda p: p.name)
def test_python_blocks_run(page: Path, tmp_path: Path) -> None:
    """Each block runs as a script, in order, in one fresh folder per page.

    A page about a cloud names the loopback server its examples talk to
    (``<!-- docs-test: moto -->``); the test starts it and passes its
    endpoint and test credentials through the environment, as a user's shell would.
    """
    text = page.read_text()
    with _page_servers(text) as server_env:
        _run_blocks(page, text, tmp_path, server_env)


def _run_blocks(page: Path, text: str, tmp_path: Path, server_env: dict[str, str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    if server_env:  # a cloud page: only the loopback server's settings, none of the shell's
        env = {k: v for k, v in env.items() if not k.startswith(("AWS_", "AZURE_"))}
    env["MLOPS_PLUGINS"] = ""
    env.update(server_env)
    for n, code in enumerate(BLOCK.findall(text)):
        script = tmp_path / f"block_{n}.py"
        first = code.lstrip().splitlines()[0]
        if first.startswith("# ") and first.endswith(".py"):  # a named module, e.g. "# train_job.py"
            script = tmp_path / first[2:].strip()
        script.write_text(code)
        proc = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, f"{page.name} block {n} failed:\n{code}\n--- stderr ---\n{proc.stderr}"


def _hooks() -> list[tuple[str, list[str]]]:
    out = []
    for spec in hookspecs.SPEC_CLASSES:
        for name, fn in inspect.getmembers(spec, inspect.isfunction):
            if name.startswith("mlops_"):
                args = [a for a in inspect.signature(fn).parameters if a != "self"]
                out.append((name, args))
    return out


@pytest.mark.parametrize(("hook", "args"), _hooks(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_hook_is_documented_with_its_signature(hook: str, args: list[str]) -> None:
    text = (DOCS / "plugins.md").read_text()
    assert f"### `{hook}({', '.join(args)})`" in text


def test_every_hook_has_a_docstring() -> None:
    for spec in hookspecs.SPEC_CLASSES:
        for name, fn in inspect.getmembers(spec, inspect.isfunction):
            if name.startswith("mlops_"):
                assert fn.__doc__ and len(fn.__doc__.strip()) > 80, name


def test_index_links_every_page() -> None:
    index = (DOCS / "index.md").read_text()
    for page in DOCS.glob("*.md"):
        if page.name != "index.md":
            assert f"({page.name})" in index, f"docs/index.md does not link {page.name}"
