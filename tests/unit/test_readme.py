"""README.md and docs/reference.md say what the code does, and stay that way."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import pytest
from istio_canary import metrics as opmetrics
from istio_canary.models import CanaryReleaseSpec, CanaryReleaseStatus, reference
from istio_canary.plugin.command import build_parser
from pydantic import BaseModel

REPO = pathlib.Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def _model_paths(model: type[BaseModel], prefix: str) -> set[str]:
    """Every wire path of a model, spelled as the reference spells it (``[]``, ``<name>``)."""
    paths = set()
    for name, info in model.model_fields.items():
        path = f"{prefix}.{info.alias or name}"
        paths.add(path)
        paths |= _nested_paths(info.annotation, path)
    return paths


def _nested_paths(annotation: Any, path: str) -> set[str]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _model_paths(annotation, path)
    origin = getattr(annotation, "__origin__", None)
    args: tuple[Any, ...] = getattr(annotation, "__args__", ())
    if origin is list:
        inner = args[0]
        is_model = isinstance(inner, type) and issubclass(inner, BaseModel)
        return _nested_paths(inner, f"{path}[]") | ({f"{path}[]"} if is_model else set())
    if origin is dict:
        return {f"{path}.<name>"} | _nested_paths(args[1], f"{path}.<name>")
    found: set[str] = set()
    for arg in args:  # X | None, Annotated[X, ...]
        found |= _nested_paths(arg, path)
    return found


def test_reference_doc_is_what_the_models_generate() -> None:
    committed = (REPO / reference.REFERENCE_FILE).read_text()
    assert committed == reference.render_reference(), (
        f"{reference.REFERENCE_FILE} is out of date; regenerate: {reference.REGENERATE_COMMAND}"
    )


def test_reference_lists_every_field_of_the_spec_and_status_models() -> None:
    documented = {f.path for f in reference.fields()}
    wanted = _model_paths(CanaryReleaseSpec, "spec") | _model_paths(CanaryReleaseStatus, "status")
    assert wanted - documented == set()


def test_every_field_in_the_reference_has_a_description() -> None:
    assert reference.missing_descriptions() == []


def test_field_notes_name_only_fields_that_exist() -> None:
    assert reference.stale_notes() == []


def test_reference_shows_defaults_and_allowed_values_from_the_models() -> None:
    rows = {f.path: f for f in reference.fields()}
    assert rows["spec.strategy"].default == '"Canary"'
    assert "`BlueGreen`" in rows["spec.strategy"].allowed
    assert rows["spec.traffic.weight"].allowed == "[0, 100]"
    assert rows["spec.service"].required and not rows["spec.takeOver"].required


def test_readme_keeps_the_two_setup_commands_ci_reads() -> None:
    assert re.search(r"^make demo\b", README, re.MULTILINE)
    assert re.search(r"^make test\b", README, re.MULTILINE)


def test_readme_links_only_docs_that_exist_and_links_the_reference() -> None:
    links = re.findall(r"\]\(([^)#]+)\)", README)
    assert "docs/reference.md" in links
    for link in links:
        if not link.startswith("http"):
            assert (REPO / link).exists(), link


def test_readme_shows_every_kubectl_plugin_verb() -> None:
    verbs_action = next(a for a in build_parser()._actions if a.dest == "verb")
    for verb in verbs_action.choices or {}:
        assert f"kubectl canary {verb} " in README, verb


def test_readme_lists_every_bookinfo_example() -> None:
    for path in (REPO / "examples" / "bookinfo").glob("*.yaml"):
        assert f"`{path.name}`" in README, path.name


def test_readme_make_targets_exist_in_the_makefile() -> None:
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.MULTILINE))
    for target in set(re.findall(r"\bmake ([a-z][a-z-]*)", README)):
        assert target in targets, target


def test_readme_metrics_table_is_what_the_operator_exports() -> None:
    exported = {m.name for m in opmetrics.OperatorMetrics().registry.collect()}
    listed = set(re.findall(r"^\| `(istio_canary_[a-z_]+)`", README, re.MULTILINE))
    # prometheus_client reports counters without their _total suffix.
    assert {name.removesuffix("_total") for name in listed} == exported


@pytest.mark.parametrize("pattern", [r"/work/", r"/home/", r"/root/", r"/tmp/"])
def test_readme_names_no_paths_of_a_particular_machine(pattern: str) -> None:
    assert pattern not in README
