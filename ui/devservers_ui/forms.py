"""The create form: what the browser sends, as ``DevServerClient.create`` arguments and per-field errors.

The rules are the SDK's (``DevServerClient.check_create`` runs its models); this module only knows the
form: which input holds which CRD field, and the two things a text box cannot be by itself (a whole
number, ``KEY=VALUE`` lines). Errors come back keyed by the input's name, so the page shows each one
beside its field before anything is sent to the cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devservers_sdk import DevServerClient

__all__ = ["FIELDS", "create_arguments", "form_errors"]

# CRD path (as the SDK's errors name it) -> the form input that sets it. Longest prefix wins.
FIELDS = {
    "metadata.name": "name",
    "spec.flavor": "flavor",
    "spec.image": "image",
    "spec.persistentHomeSize": "homeSize",
    "spec.sharedVolumeClaimName": "sharedVolume",
    "spec.lifecycle.timeToLive": "timeToLive",
    "spec.lifecycle.idleTimeout": "idleTimeout",
    "spec.lifecycle.autoShutdown": "autoShutdown",
    "spec.lifecycle.expirationTime": "timeToLive",
    "spec.mode": "distributed",
    "spec.distributed.worldSize": "worldSize",
    "spec.distributed.nprocsPerNode": "nprocsPerNode",
    "spec.distributed.backend": "backend",
    "spec.distributed.ncclSettings": "ncclSettings",
    "spec.distributed": "distributed",
}
FORM_LEVEL = "form"


def _text(form: dict[str, Any], key: str) -> str | None:
    value = form.get(key)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _whole_number(form: dict[str, Any], key: str, label: str, errors: dict[str, str]) -> int | None:
    text = _text(form, key)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        errors[key] = f"{label} must be a whole number, e.g. 2 (got {text!r})."
        return None


def _nccl(form: dict[str, Any], errors: dict[str, str]) -> dict[str, str] | None:
    text = _text(form, "ncclSettings")
    if text is None:
        return None
    settings: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.strip().partition("=")
        if not sep or not key:
            errors["ncclSettings"] = f"Write one KEY=VALUE per line, e.g. NCCL_DEBUG=INFO (got {line.strip()!r})."
            return None
        settings[key.strip()] = value.strip()
    return settings or None


def create_arguments(form: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, str]]:
    """The name and keyword arguments of ``create`` for a submitted form, and the errors found on the way."""
    errors: dict[str, str] = {}
    distributed = bool(form.get("distributed"))
    arguments: dict[str, Any] = {
        "flavor": _text(form, "flavor") or "",
        "image": _text(form, "image"),
        # Unticked is "0" (no home); ticked and empty is None: the flavor's or the operator's default size.
        "home_size": _text(form, "homeSize") if form.get("homeEnabled", True) else "0",
        "shared_volume": _text(form, "sharedVolume"),
        "time_to_live": _text(form, "timeToLive"),
        "idle_timeout": _text(form, "idleTimeout"),
        "auto_shutdown": bool(form.get("autoShutdown", True)),
        "mode": "distributed" if distributed else "standalone",
    }
    if not arguments["flavor"]:
        errors["flavor"] = "Choose a flavor."
    if distributed:
        arguments["world_size"] = _whole_number(form, "worldSize", "World size", errors)
        arguments["nprocs_per_node"] = _whole_number(form, "nprocsPerNode", "Processes per pod", errors)
        arguments["backend"] = _text(form, "backend")
        arguments["nccl_settings"] = _nccl(form, errors)
    return _text(form, "name") or "", arguments, errors


def _input_for(path: str | None) -> str:
    if not path:
        return FORM_LEVEL
    for prefix in sorted(FIELDS, key=len, reverse=True):
        if path == prefix or path.startswith(prefix + "."):
            return FIELDS[prefix]
    return FORM_LEVEL


def form_errors(client: DevServerClient, form: dict[str, Any]) -> dict[str, str]:
    """Every problem of a submitted form, keyed by input name (``form`` for those of no one input)."""
    name, arguments, errors = create_arguments(form)
    for problem in client.check_create(name, **arguments):
        key = _input_for(problem.field)
        message = problem.message
        # The SDK's sentence names the object and the CRD path; beside the input, the rule is enough.
        if problem.field and f"{problem.field}: " in message:
            message = message.split(f"{problem.field}: ", 1)[1]
        errors.setdefault(key, message)
    return errors
