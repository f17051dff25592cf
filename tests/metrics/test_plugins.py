"""Metrics from outside the package: a file beside task.yaml (`my_metrics.py:fn`, `module:fn`), a plugin
distribution installed into a fresh virtualenv (entry-point group `evals.plugins`), and `evals metrics`."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import evals
from evals.cli import app
from evals.data.tasks import load_task
from evals.errors import EvalsError
from evals.run.store import Store, load_run

REPO = Path(evals.__file__).resolve().parents[1]

MY_METRICS = '''
from evals.types import Score


def mentions(ctx, *, word="refund"):
    """A plain metric: its keyword arguments after ctx are its configuration."""
    return word in ctx.completion.text


async def length_ok(ctx):
    return Score(float(len(ctx.completion.text) <= 40), explanation=f"{len(ctx.completion.text)} chars")


def longer_than(n: int = 3):
    """A factory: called with the task's arguments, returns the metric."""
    def metric(ctx):
        return float(len(ctx.completion.text.split()) > n)
    return metric
'''


def user_task(make_task, tmp_path: Path, metrics: list, **extra) -> Path:
    folder = make_task(models=[{"spec": "fake:scripted", "options": {"responses": ["We will refund you today."]}}],
                       metrics=metrics, **{"pass": {}}, **extra)
    (folder / "my_metrics.py").write_text(MY_METRICS)
    return folder


def test_metrics_from_a_file_beside_task_yaml_run_and_are_recorded(make_task, tmp_path) -> None:
    folder = user_task(make_task, tmp_path, [
        {"name": "my_metrics.py:mentions", "id": "refund"},
        {"name": "my_metrics.py:mentions", "id": "sorry", "word": "sorry"},
        {"name": "my_metrics:length_ok"},
        {"name": "my_metrics.py:longer_than", "id": "long", "n": 10},
    ])
    store = tmp_path / "s.db"
    result = CliRunner().invoke(app, ["run", str(folder), "--store", str(store), "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    [summary] = json.loads(result.stdout)
    assert summary["metrics"] == {"refund": 1.0, "sorry": 0.0, "my_metrics:length_ok": 1.0, "long": 0.0}
    df = load_run(summary["run_id"], Store(store))
    assert df["scores"][0]["my_metrics:length_ok"]["explanation"] == "25 chars"
    recorded = {m["id"]: m for m in df.attrs["manifest"]["metrics"]}
    assert recorded["sorry"]["args"] == {"word": "sorry"} and recorded["refund"]["config"] == {"word": "refund"}
    assert recorded["long"]["config"] == {"n": 10}


def test_editing_the_metric_file_changes_the_task_hash(make_task, tmp_path) -> None:
    folder = user_task(make_task, tmp_path, [{"name": "my_metrics.py:mentions"}])
    before = load_task(str(folder)).hash
    (folder / "my_metrics.py").write_text(MY_METRICS.replace('"refund"', '"return"'))
    assert load_task(str(folder)).hash != before


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        ({"name": "my_metrics.py:mentions", "wrod": "x"}, "unexpected keyword argument 'wrod'"),
        ({"name": "my_metrics.py:longer_than", "m": 1}, "unexpected keyword argument 'm'"),
        ({"name": "my_metrics.py:nope"}, "has no function 'nope'. It has: Score, mentions, length_ok, longer_than"),
        ({"name": "missing.py:fn"}, "no file"),
        ({"name": "exact_mach"}, "Did you mean 'exact_match'?"),
        ({"name": "json_fields", "feilds": ["a"]}, "unexpected keyword argument 'feilds'"),
        ({"name": "regex", "pattern": "("}, "regex"),
    ],
)
def test_a_bad_metric_fails_when_the_task_loads_before_any_model_call(make_task, tmp_path, metric, message) -> None:
    folder = user_task(make_task, tmp_path, [metric])
    with pytest.raises(EvalsError, match="task.yaml") as e:
        load_task(str(folder))
    assert message in str(e.value)
    result = CliRunner().invoke(app, ["run", str(folder), "--store", str(tmp_path / "s.db"), "--no-progress"])
    assert result.exit_code == 2 and "Traceback" not in result.output and message in result.stderr
    assert Store(tmp_path / "s.db").list_runs() == []  # nothing ran


def test_a_broken_metric_file_is_a_clear_load_error(make_task, tmp_path) -> None:
    folder = user_task(make_task, tmp_path, [{"name": "my_metrics.py:mentions"}])
    (folder / "my_metrics.py").write_text("import no_such_module_here\n")
    with pytest.raises(EvalsError, match="my_metrics.py failed to import: ModuleNotFoundError"):
        load_task(str(folder))


def test_evals_metrics_lists_every_builtin_with_description_and_defaults() -> None:
    result = CliRunner().invoke(app, ["metrics", "--json"])
    assert result.exit_code == 0
    listed = {m["name"]: m for m in json.loads(result.stdout)}
    expected = {"exact_match", "includes", "regex", "numeric_within", "json_valid", "json_schema", "json_fields",
                "set_f1", "label", "rouge_l", "bleu", "chrf", "embedding_similarity", "rubric_judge",
                "pairwise_judge"}
    assert expected <= set(listed)
    assert all(m["description"] and m["description"].endswith(".") for m in listed.values())
    assert listed["rubric_judge"]["args"][:2] == [
        {"name": "rubric", "required": True, "default": None},
        {"name": "judge", "required": False, "default": "openai:gpt-4o-mini"}]
    table = CliRunner().invoke(app, ["metrics"]).stdout
    assert "embedding_similarity" in table and "model='all-MiniLM-L6-v2'" in table


PLUGIN = '''
from evals.metrics import register_metric
from evals.types import Score


@register_metric("shouting")
def shouting(min_ratio: float = 0.5):
    """1 if at least min_ratio of the answer's letters are upper case."""
    async def score(ctx):
        letters = [c for c in ctx.completion.text if c.isalpha()]
        return Score(float(bool(letters) and sum(c.isupper() for c in letters) / len(letters) >= min_ratio))
    return score
'''


def test_a_plugin_installed_in_a_fresh_virtualenv_registers_through_its_entry_point(tmp_path, make_task) -> None:
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "evals-shouting"
        version = "0.1"
        [project.entry-points."evals.plugins"]
        shouting = "evals_shouting"
    '''))
    (plugin / "evals_shouting.py").write_text(PLUGIN)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    venv_site = subprocess.run([python, "-c", "import site; print(site.getsitepackages()[0])"], check=True,
                               capture_output=True, text=True).stdout.strip()
    # the venv sees this environment's packages (evals' dependencies, pip, setuptools) the way a
    # --system-site-packages venv sees the system's
    (Path(venv_site) / "parent.pth").write_text(f"import site; site.addsitedir({site.getsitepackages()[0]!r})\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-index", "--no-build-isolation", "--no-deps",
                    str(plugin)], check=True, env=env, capture_output=True)
    assert (Path(venv_site) / "evals_shouting.py").is_file()  # installed into the venv, not here

    listed = subprocess.run([python, "-m", "evals", "metrics", "--json"], env=env, capture_output=True, text=True,
                            check=False)
    assert listed.returncode == 0, listed.stderr
    [shouting] = [m for m in json.loads(listed.stdout) if m["name"] == "shouting"]
    assert shouting["module"] == "evals_shouting"
    assert shouting["args"] == [{"name": "min_ratio", "required": False, "default": 0.5}]

    folder = make_task(models=[{"spec": "fake:scripted", "options": {"responses": ["STOP SHOUTING, please"]}}],
                       metrics=[{"name": "shouting", "min_ratio": 0.6}], **{"pass": {"shouting": 1}})
    run = subprocess.run([python, "-m", "evals", "run", str(folder), "--store", str(tmp_path / "s.db"),
                          "--no-progress", "--json"], env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)[0]["metrics"] == {"shouting": 1.0}  # 12 of 18 letters are upper case

    here = CliRunner().invoke(app, ["metrics", "--json"])  # this environment does not have it
    assert "shouting" not in {m["name"] for m in json.loads(here.stdout)}
    (folder / "task.yaml").write_text(yaml.safe_dump({**yaml.safe_load((folder / "task.yaml").read_text()),
                                                      "metrics": [{"name": "shoutin"}], "pass": {}}))
    typo = subprocess.run([python, "-m", "evals", "run", str(folder), "--no-progress"], env=env,
                          capture_output=True, text=True, check=False)
    assert typo.returncode == 2 and "Did you mean 'shouting'?" in typo.stderr


# --- a plugin cannot take a name that is already registered -----------------------------------------------


@pytest.mark.parametrize(("kind", "name", "module"), [("metric", "exact_match", "evals.metrics.text"),
                                                      ("provider", "openai", "evals.providers.openai")])
def test_a_second_factory_for_a_registered_name_is_refused_naming_both(kind, name, module) -> None:
    from evals.metrics import metrics
    from evals.providers import providers

    registry = metrics if kind == "metric" else providers
    builtin = registry.get(name)

    def impostor(*args, **kwargs):
        raise AssertionError("never called")

    with pytest.raises(EvalsError) as e:
        registry.register(name)(impostor)
    message = str(e.value)
    assert f"{kind} '{name}' is already registered" in message
    assert f"{module}." in message and f"{__name__}.{impostor.__qualname__}" in message
    assert registry.get(name) is builtin
    assert registry.register(name)(builtin) is builtin  # the same factory again (a module imported twice): fine
    assert registry.get(name) is builtin


SHADOWING_PROVIDER = '''
from evals.providers import register_provider


@register_provider("fake")
def fake(config):
    """A provider that would answer for every fake:... model."""
'''

SHADOWING_METRIC = '''
from evals.metrics import register_metric


@register_metric("exact_match")
def exact_match():
    """Always 1."""
    return lambda ctx: 1.0
'''


@pytest.mark.parametrize("order", ["metrics", "providers"])
def test_a_plugin_that_shadows_a_builtin_provider_is_refused_whichever_registry_loads_first(tmp_path, order) -> None:
    """In a fresh process, with the plugin loaded by the first registry asked (before the other one has
    loaded its built-ins): the built-ins keep their names and the plugin's failure is recorded."""
    code = textwrap.dedent(f'''
        import json, sys
        from importlib.metadata import EntryPoint
        import evals.registry as registry
        sys.path.insert(0, {str(tmp_path)!r})
        registry.entry_points = lambda group: [EntryPoint("shadow", "shadow_plugin", group)]
        from evals.metrics import metrics
        from evals.providers import providers
        (metrics if {order!r} == "metrics" else providers).names()
        print(json.dumps({{"exact_match": metrics.get("exact_match").__module__,
                           "fake": providers.get("fake").__module__, "errors": registry.plugin_errors}}))
    ''')
    (tmp_path / "shadow_plugin.py").write_text(SHADOWING_PROVIDER + SHADOWING_METRIC)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["exact_match"] == "evals.metrics.text" and out["fake"] == "evals.providers.fake"
    assert list(out["errors"]) == ["shadow = shadow_plugin"]
    why = out["errors"]["shadow = shadow_plugin"]
    assert "provider 'fake' is already registered by evals.providers.fake.FakeProvider" in why
    assert "shadow_plugin.fake" in why


def test_evals_metrics_reports_a_plugin_that_shadows_a_builtin_metric(tmp_path, monkeypatch) -> None:
    from importlib.metadata import EntryPoint

    from evals import registry

    (tmp_path / "shadow_metric_plugin.py").write_text(SHADOWING_METRIC)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "entry_points",
                        lambda group: [EntryPoint("shadow", "shadow_metric_plugin", group)])
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(registry, "plugin_errors", {})
    result = CliRunner().invoke(app, ["metrics", "--json"])
    assert result.exit_code == 0
    assert {m["name"]: m["module"] for m in json.loads(result.stdout)}["exact_match"] == "evals.metrics.text"
    assert "plugin shadow = shadow_metric_plugin failed to load" in result.stderr
    assert "metric 'exact_match' is already registered by evals.metrics.text.exact_match" in result.stderr
    assert "shadow_metric_plugin.exact_match" in result.stderr
