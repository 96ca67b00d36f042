"""Run the Argo CD customizations of deploy/argocd/argocd-cm.yaml as Argo CD does, with Lua 5.1.

Argo CD runs health checks and actions in gopher-lua (Lua 5.1) with the live object as the
global ``obj`` (and an action's parameters as ``actionParams``), without ``require`` of
arbitrary modules; it turns the returned table back into JSON. These helpers do the same with
lupa's Lua 5.1, with the module loaders and I/O removed, so a script that leans on anything
Argo CD lacks fails here too.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from lupa import lua51

ROOT = Path(__file__).resolve().parents[2]
CONFIGMAP = ROOT / "deploy" / "argocd" / "argocd-cm.yaml"
KEY = "releases.istio-canary.io_CanaryRelease"
HEALTH_KEY = f"resource.customizations.health.{KEY}"
ACTIONS_KEY = f"resource.customizations.actions.{KEY}"
# What Argo CD's sandbox does not offer a script (it offers only `os` through require).
UNAVAILABLE = ("require", "io", "os", "dofile", "loadfile", "load", "loadstring", "package", "debug")


class LuaScriptError(Exception):
    """The script called error(): Argo CD shows this message and changes nothing."""


def configmap_data(path: Path = CONFIGMAP) -> dict[str, str]:
    data: dict[str, str] = yaml.safe_load(path.read_text())["data"]
    return data


def health_script(data: Mapping[str, str]) -> str:
    return data[HEALTH_KEY]


def action_scripts(data: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """The discovery script and each action's script, by action name."""
    actions = yaml.safe_load(data[ACTIONS_KEY])
    return actions["discovery.lua"], {d["name"]: d["action.lua"] for d in actions["definitions"]}


def run(script: str, obj: Mapping[str, Any], params: Mapping[str, str] | None = None) -> Any:
    """The script's return value as JSON-ready Python, the way Argo CD reads it back."""
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True, register_eval=False, register_builtins=False)
    env = runtime.globals()
    for name in UNAVAILABLE:
        env[name] = None
    env["obj"] = _to_lua(runtime, obj)
    if params is not None:
        env["actionParams"] = _to_lua(runtime, dict(params))
    try:
        result = runtime.execute(script)
    except lua51.LuaError as err:
        raise LuaScriptError(str(err)) from err
    return _from_lua(result, like=obj)


def _to_lua(runtime: Any, value: Any) -> Any:
    if isinstance(value, Mapping):
        return runtime.table_from({k: _to_lua(runtime, v) for k, v in value.items() if v is not None})
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, v) for v in value])
    return value


def _from_lua(value: Any, *, like: Any = None) -> Any:
    """Lua values as JSON: an empty table takes the shape it had in the input (as Argo CD does),
    and a whole number is an integer (Lua 5.1 has only doubles; JSON does not tell them apart)."""
    if lua51.lua_type(value) == "table":
        items = dict(value.items())
        if not items:
            return [] if isinstance(like, list) else {}
        if all(isinstance(k, int) for k in items) and sorted(items) == list(range(1, len(items) + 1)):
            hint = like if isinstance(like, list) else []
            return [_from_lua(items[i], like=hint[i - 1] if i <= len(hint) else None) for i in sorted(items)]
        hints = like if isinstance(like, Mapping) else {}
        return {str(k): _from_lua(v, like=hints.get(str(k))) for k, v in items.items()}
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
