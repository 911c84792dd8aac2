"""Workspace configuration (precedence, errors, root discovery) and the plugin system."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import mlops_sdk as mlops
from mlops_sdk.errors import ConfigError, MissingDependency, PluginError, UnknownScheme
from mlops_sdk.hookspecs import hookimpl
from mlops_sdk.plugins import (
    Registrar,
    get_plugin_manager,
    plugin_registered,
    reset_plugin_manager,
)
from mlops_sdk.records import RunRecord, RunStatus
from mlops_sdk.tracking.sql import SqlTrackingStore

# -- configuration precedence ------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def _db_files(root: Path) -> set[str]:
    return {p.name for p in root.rglob("*.db")}


@pytest.fixture
def layered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with every layer of configuration, each naming a different database."""
    monkeypatch.delenv("MLOPS_TRACKING", raising=False)
    _write(
        tmp_path / "pyproject.toml",
        '[project]\nname = "x"\n[tool.mlops]\ntracking = "sqlite:///pyproject.db"\n',
    )
    _write(tmp_path / "mlops.toml", 'tracking = "sqlite:///toml.db"\nflush_interval = 0.25\n')
    return tmp_path


def test_argument_beats_everything(layered: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_TRACKING", "sqlite:///env.db")
    ws = mlops.Workspace.open(layered, tracking="sqlite:///arg.db")
    assert ws.config.tracking == "sqlite:///arg.db"
    assert ws.config.sources["tracking"] == "argument"
    assert _db_files(layered) == {"arg.db"}
    ws.close()


def test_env_beats_files(layered: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_TRACKING", "sqlite:///env.db")
    monkeypatch.setenv("MLOPS_FLUSH_INTERVAL", "0.75")
    ws = mlops.Workspace.open(layered)
    assert ws.config.tracking == "sqlite:///env.db"
    assert ws.config.sources["tracking"] == "$MLOPS_TRACKING"
    assert ws.config.flush_interval == 0.75
    assert _db_files(layered) == {"env.db"}
    ws.close()


def test_mlops_toml_beats_pyproject(layered: Path) -> None:
    ws = mlops.Workspace.open(layered)
    assert ws.config.tracking == "sqlite:///toml.db"
    assert ws.config.flush_interval == 0.25
    assert ws.writer.flush_interval == 0.25
    assert ws.config.sources["tracking"].endswith("mlops.toml")
    with ws.experiment("e").start_run() as run:
        run.log_metric("m", 1.0)
    assert _db_files(layered) == {"toml.db"}
    ws.close()


def test_pyproject_tool_table_beats_default(layered: Path) -> None:
    (layered / "mlops.toml").unlink()
    ws = mlops.Workspace.open(layered)
    assert ws.config.tracking == "sqlite:///pyproject.db"
    assert "[tool.mlops]" in ws.config.sources["tracking"]
    assert _db_files(layered) == {"pyproject.db"}
    ws.close()


def test_default_is_dot_mlops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOPS_TRACKING", raising=False)
    monkeypatch.delenv("MLOPS_STORAGE", raising=False)
    monkeypatch.chdir(tmp_path)
    ws = mlops.Workspace.open()
    assert ws.root == tmp_path
    assert ws.config.sources["tracking"] == "default"
    with ws.experiment("e").start_run() as run:
        (tmp_path / "a.txt").write_text("a")
        run.log_artifact(tmp_path / "a.txt")
    assert (tmp_path / ".mlops" / "tracking.db").is_file()
    assert list((tmp_path / ".mlops" / "store" / "objects").rglob("*"))
    ws.close()


def test_root_is_found_from_a_subfolder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path / "mlops.toml", 'tracking = "sqlite:///runs/tracking.db"\n')
    deep = tmp_path / "src" / "pkg" / "notebooks"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    ws = mlops.Workspace.open()
    assert ws.root == tmp_path
    with ws.experiment("e").start_run():
        pass
    assert (tmp_path / "runs" / "tracking.db").is_file()  # relative to the root, not the cwd
    assert not (deep / "runs").exists()
    ws.close()


def test_root_found_from_existing_dot_mlops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlops.Workspace.open(tmp_path).close()  # creates tmp_path/.mlops
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert mlops.Workspace.open().root == tmp_path


def test_pyproject_without_tool_table_is_not_a_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "mlops.toml", 'tracking = "sqlite:///outer.db"\n')
    _write(tmp_path / "inner" / "pyproject.toml", '[project]\nname = "inner"\n')
    monkeypatch.chdir(tmp_path / "inner")
    assert mlops.Workspace.open().root == tmp_path


def test_unknown_setting_in_mlops_toml(tmp_path: Path) -> None:
    _write(tmp_path / "mlops.toml", 'tracking = "sqlite:///x.db"\ntraking = "typo"\n')
    with pytest.raises(ConfigError, match="traking") as info:
        mlops.Workspace.open(tmp_path)
    assert "mlops.toml" in str(info.value)
    assert not (tmp_path / "x.db").exists()


def test_unknown_setting_in_pyproject_table(tmp_path: Path) -> None:
    _write(tmp_path / "pyproject.toml", '[tool.mlops]\nstorrage = "file://x"\n')
    with pytest.raises(ConfigError, match="storrage"):
        mlops.Workspace.open(tmp_path)


def test_invalid_toml(tmp_path: Path) -> None:
    _write(tmp_path / "mlops.toml", 'tracking = "sqlite:///x.db\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        mlops.Workspace.open(tmp_path)


@pytest.mark.parametrize("value", ["0", "-1", "abc", "nan", "1000"])
def test_bad_flush_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("MLOPS_FLUSH_INTERVAL", value)
    with pytest.raises(ConfigError, match="flush_interval"):
        mlops.Workspace.open(tmp_path)


def test_wrong_type_in_toml(tmp_path: Path) -> None:
    _write(tmp_path / "mlops.toml", "tracking = 5\n")
    with pytest.raises(ConfigError, match="tracking"):
        mlops.Workspace.open(tmp_path)


@pytest.mark.parametrize("kind", ["tracking", "storage", "compute"])
def test_unknown_scheme_names_known_schemes(tmp_path: Path, kind: str) -> None:
    with pytest.raises(UnknownScheme) as info:
        mlops.Workspace.open(tmp_path, **{kind: "nosuchdb://host/x"})
    message = str(info.value)
    assert "nosuchdb" in message
    known = {"tracking": "sqlite", "storage": "file", "compute": "local"}[kind]
    assert known in message
    assert isinstance(info.value, ConfigError)
    assert not (tmp_path / ".mlops").exists()  # nothing was created


def test_unknown_scheme_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_TRACKING", "postgresq://typo/x")
    with pytest.raises(UnknownScheme, match="postgresq"):
        mlops.Workspace.open(tmp_path)


# -- plugins: backends ----------------------------------------------------------------


class CountingStore(SqlTrackingStore):
    """A SQLite store under another scheme that counts the batches it writes."""

    batches = 0

    def write_batch(self, batch: Any) -> None:
        type(self).batches += 1
        super().write_batch(batch)


def open_counting(uri: str, *, root: Path | str = ".") -> CountingStore:
    path = uri.split("://", 1)[1]
    return CountingStore(f"sqlite:///{path}", root=root)


class CountingPlugin:
    @hookimpl
    def mlops_register_backends(self, register: Registrar) -> None:
        register.tracking("counting", open_counting, description="test store")


def test_plugin_provides_a_tracking_scheme(tmp_path: Path) -> None:
    with pytest.raises(UnknownScheme):
        mlops.Workspace.open(tmp_path, tracking="counting://c.db")
    CountingStore.batches = 0
    with plugin_registered(CountingPlugin(), "counting-plugin") as manager:
        entry = manager.registry.view("tracking")["counting"]
        assert entry.plugin == "counting-plugin"
        ws = mlops.Workspace.open(tmp_path, tracking="counting://c.db")
        assert isinstance(ws.tracking, CountingStore)
        with ws.experiment("e").start_run() as run:
            run.log_metric("m", 2.0)
        assert CountingStore.batches >= 1
        assert ws.get_run(run.id).metrics == {"m": 2.0}
        ws.close()
        assert (tmp_path / "c.db").is_file()
    # unregistered again after the block
    with pytest.raises(UnknownScheme):
        mlops.Workspace.open(tmp_path, tracking="counting://c.db")


def test_plugin_registry_is_read_only() -> None:
    view = get_plugin_manager().registry.view("tracking")
    with pytest.raises(TypeError):
        view["x"] = view["sqlite"]  # type: ignore[index]


def test_duplicate_scheme_is_refused_unless_clobber(tmp_path: Path) -> None:
    class Duplicate:
        @hookimpl
        def mlops_register_backends(self, register: Registrar) -> None:
            register.tracking("sqlite", open_counting)

    with plugin_registered(Duplicate(), "dup"), pytest.raises(PluginError) as info:
        mlops.Workspace.open(tmp_path)
    assert "dup" in str(info.value) and "sqlite" in str(info.value) and "clobber" in str(info.value)

    class Clobber:
        @hookimpl
        def mlops_register_backends(self, register: Registrar) -> None:
            register.tracking("sqlite", open_counting, clobber=True)

    with plugin_registered(Clobber(), "clobber"):
        ws = mlops.Workspace.open(tmp_path, tracking="sqlite:///clobbered.db")
        assert isinstance(ws.tracking, CountingStore)
        assert get_plugin_manager().registry.view("tracking")["sqlite"].plugin == "clobber"
        ws.close()


def test_misspelled_hook_is_an_error() -> None:
    class Typo:
        @hookimpl
        def mlops_register_backend(self, register: Registrar) -> None:  # missing "s"
            pass

    with (
        pytest.raises(PluginError, match="mlops_register_backend") as info,
        plugin_registered(Typo(), "typo"),
    ):
        pass
    assert "typo" in str(info.value)
    # the manager is left usable, without the bad plugin
    assert "typo" not in get_plugin_manager().infos
    assert "sqlite" in get_plugin_manager().registry.view("tracking")


def test_hook_that_raises_is_named(tmp_path: Path) -> None:
    class Broken:
        @hookimpl
        def mlops_register_backends(self, register: Registrar) -> None:
            raise RuntimeError("cannot reach the license server")

    with plugin_registered(Broken(), "broken-backends"), pytest.raises(PluginError) as info:
        mlops.Workspace.open(tmp_path)
    assert "broken-backends" in str(info.value)
    assert "cannot reach the license server" in str(info.value)


def test_invalid_registration_is_named() -> None:
    class Bad:
        @hookimpl
        def mlops_register_backends(self, register: Registrar) -> None:
            register.storage("s3://", "mod:attr")

    with plugin_registered(Bad(), "bad-scheme"), pytest.raises(PluginError, match="bad-scheme"):
        get_plugin_manager().registry  # noqa: B018


def test_missing_dependency_says_what_to_install(tmp_path: Path) -> None:
    class Lazy:
        @hookimpl
        def mlops_register_backends(self, register: Registrar) -> None:
            register.tracking(
                "fancydb",
                "mlops_test_not_installed_pkg.store:FancyStore",
                requires="mlops-sdk-fancydb",
            )

    with plugin_registered(Lazy(), "fancy"), pytest.raises(MissingDependency) as info:
        mlops.Workspace.open(tmp_path, tracking="fancydb://host/db")
    message = str(info.value)
    assert "pip install mlops-sdk-fancydb" in message
    assert "fancy" in message and "fancydb" in message
    assert isinstance(info.value, ImportError)


def test_registered_target_that_does_not_exist(tmp_path: Path) -> None:
    class Wrong:
        @hookimpl
        def mlops_register_backends(self, register: Registrar) -> None:
            register.tracking("wrongdb", "mlops_sdk.tracking.sql:no_such_factory")

    with plugin_registered(Wrong(), "wrong"), pytest.raises(PluginError, match="wrong"):
        mlops.Workspace.open(tmp_path, tracking="wrongdb://x")


# -- plugins: entry points and MLOPS_PLUGINS ---------------------------------------------


def _install_dist(
    site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]
) -> None:
    """A minimal installed distribution (dist-info with entry_points.txt) in ``site``."""
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = ["[mlops_sdk]", *(f"{name} = {target}" for name, target in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "site-packages"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    for name in [m for m in sys.modules if m.startswith("mlops_testplug_")]:
        del sys.modules[name]


GOOD_PLUGIN = """
from mlops_sdk.hookspecs import hookimpl

@hookimpl
def mlops_register_backends(register):
    register.storage("goodfs", "mlops_sdk.storage.fsspec_storage:open_memory")
"""


def test_entry_point_plugin_that_fails_to_import_is_named(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_dist(
        site,
        "mlops-testplug-broken",
        {"brokenplug": "mlops_testplug_broken"},
        {"mlops_testplug_broken": "raise ImportError('needs libfoo.so.3')\n"},
    )
    monkeypatch.delenv("MLOPS_PLUGINS")
    reset_plugin_manager()
    with pytest.raises(PluginError) as info:
        get_plugin_manager()
    message = str(info.value)
    assert "brokenplug" in message and "mlops_testplug_broken" in message
    assert "needs libfoo.so.3" in message
    # and through the public entry point too
    reset_plugin_manager()
    with pytest.raises(PluginError, match="brokenplug"):
        mlops.Workspace.open(site.parent)


def test_mlops_plugins_restricts_what_loads(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_dist(
        site,
        "mlops-testplug-two",
        {"goodplug": "mlops_testplug_good", "brokenplug": "mlops_testplug_broken2"},
        {
            "mlops_testplug_good": GOOD_PLUGIN,
            "mlops_testplug_broken2": "raise ImportError('nope')\n",
        },
    )
    # Only the named plugin loads: the broken one is never imported.
    monkeypatch.setenv("MLOPS_PLUGINS", "goodplug")
    reset_plugin_manager()
    manager = get_plugin_manager()
    assert "goodplug" in manager.infos and "brokenplug" not in manager.infos
    assert manager.infos["goodplug"].distribution == "mlops-testplug-two"
    assert "goodfs" in manager.registry.view("storage")
    assert "mlops_testplug_broken2" not in sys.modules

    # Empty: built-ins only.
    monkeypatch.setenv("MLOPS_PLUGINS", "")
    reset_plugin_manager()
    manager = get_plugin_manager()
    assert "goodplug" not in manager.infos
    assert "local" in manager.infos and manager.infos["local"].builtin
    assert "goodfs" not in manager.registry.view("storage")
    assert "sqlite" in manager.registry.view("tracking")

    # Unset: everything installed loads, and the broken one is reported.
    monkeypatch.delenv("MLOPS_PLUGINS")
    reset_plugin_manager()
    with pytest.raises(PluginError, match="brokenplug"):
        get_plugin_manager()


# -- run lifecycle hooks ------------------------------------------------------------


def test_hook_after_run_start_gets_the_live_run(workspace: mlops.Workspace) -> None:
    seen: list[Any] = []

    class Plugin:
        @hookimpl
        def mlops_after_run_start(self, run: mlops.Run) -> None:
            seen.append((run.id, run.name, run.is_active, run.status))
            run.set_tag("started_by", "plugin")
            run.log_param("plugin_version", "1.2")

    with (
        plugin_registered(Plugin(), "starter"),
        workspace.experiment("e").start_run(name="r1") as run,
    ):
        assert seen == [(run.id, "r1", True, RunStatus.RUNNING)]
    stored = workspace.get_run(run.id)
    assert stored.tags["started_by"] == "plugin"
    assert stored.params["plugin_version"] == "1.2"


def test_hook_after_run_end_gets_the_final_record(workspace: mlops.Workspace) -> None:
    records: list[RunRecord] = []

    class Plugin:
        @hookimpl
        def mlops_after_run_end(self, record: RunRecord) -> None:
            records.append(record)

    with plugin_registered(Plugin(), "ender"):
        with workspace.experiment("e").start_run(name="ok", params={"a": 1}) as ok:
            for i in range(100):
                ok.log_metric("m", i)  # still queued when the run ends
        with (
            pytest.raises(ZeroDivisionError),
            workspace.experiment("e").start_run(name="bad") as bad,
        ):
            1 / 0  # noqa: B018
    assert [r.id for r in records] == [ok.id, bad.id]
    assert isinstance(records[0], RunRecord)
    assert records[0].status is RunStatus.FINISHED and records[0].end_time is not None
    assert records[0].metrics == {"m": 99.0}  # every pending write was flushed first
    assert records[0].params == {"a": 1}
    assert records[1].status is RunStatus.FAILED
    assert records[1].error is not None and "ZeroDivisionError" in records[1].error


def test_hook_run_context_gets_names_and_is_merged(workspace: mlops.Workspace) -> None:
    calls: list[tuple[str, str]] = []

    class Plugin:
        @hookimpl
        def mlops_run_context(self, experiment_name: str, run_name: str) -> dict[str, Any]:
            calls.append((experiment_name, run_name))
            return {"cluster": {"name": "gpu-a", "nodes": 4}}

    class Nothing:
        @hookimpl
        def mlops_run_context(self, experiment_name: str, run_name: str) -> None:
            return None

    with (
        plugin_registered(Plugin(), "ctx"),
        plugin_registered(Nothing(), "nothing"),
        workspace.experiment("churn").start_run(name="rf") as run,
    ):
        pass
    assert calls == [("churn", "rf")]
    ctx = workspace.get_run(run.id).context
    assert ctx["cluster"] == {"name": "gpu-a", "nodes": 4}
    assert "python" in ctx and "packages" in ctx  # the built-in sections are still there


def test_plugin_overrides_builtin_context_section(workspace: mlops.Workspace) -> None:
    class Plugin:
        @hookimpl
        def mlops_run_context(self, experiment_name: str, run_name: str) -> dict[str, Any]:
            return {"platform": {"system": "custom"}}

    with plugin_registered(Plugin(), "override"), workspace.experiment("e").start_run() as run:
        pass
    assert workspace.get_run(run.id).context["platform"] == {"system": "custom"}


def test_run_hook_that_raises_is_named_and_run_is_stored(workspace: mlops.Workspace) -> None:
    class StartFails:
        @hookimpl
        def mlops_after_run_start(self, run: mlops.Run) -> None:
            raise ConnectionError("chat webhook down")

    class Quiet:
        @hookimpl
        def mlops_after_run_start(self, run: mlops.Run) -> None:
            pass

        @hookimpl
        def mlops_after_run_end(self, record: RunRecord) -> None:
            pass

    exp = workspace.experiment("e")
    with (
        plugin_registered(Quiet(), "quiet"),
        plugin_registered(StartFails(), "notifier-start"),
        plugin_registered(Quiet(), "quiet-2"),
        pytest.raises(PluginError) as info,
    ):
        exp.start_run(name="s")
    assert 'plugin "notifier-start" failed in mlops_after_run_start' in str(info.value)
    assert "quiet" not in str(info.value)
    assert "chat webhook down" in str(info.value)
    (started,) = exp.runs()
    assert started.status is RunStatus.FAILED
    assert mlops.active_run() is None

    class EndFails:
        @hookimpl
        def mlops_after_run_end(self, record: RunRecord) -> None:
            raise ConnectionError("export failed")

    with plugin_registered(Quiet(), "quiet"), plugin_registered(EndFails(), "notifier-end"):
        run = exp.start_run(name="e")
        run.log_metric("m", 1.0)
        with pytest.raises(PluginError) as info:
            run.end()
    assert 'plugin "notifier-end" failed in mlops_after_run_end' in str(info.value)
    assert "export failed" in str(info.value) and run.id in str(info.value)
    stored = workspace.get_run(run.id)
    assert stored.status is RunStatus.FINISHED and stored.metrics == {"m": 1.0}

    class ContextFails:
        @hookimpl
        def mlops_run_context(self, experiment_name: str, run_name: str) -> dict[str, Any]:
            raise KeyError("CLUSTER_NAME")

    with plugin_registered(ContextFails(), "ctx-provider"), pytest.raises(PluginError) as info:
        exp.start_run(name="c")
    assert 'plugin "ctx-provider" failed in mlops_run_context' in str(info.value)
    assert "CLUSTER_NAME" in str(info.value)
    assert [r.name for r in exp.runs()] == ["e", "s"]  # nothing stored for the failed start
    assert mlops.active_run() is None
