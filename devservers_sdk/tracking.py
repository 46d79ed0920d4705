"""One call for a training script: a tracked run on rank 0, with the tool the DevServer is configured for.

::

    from devservers_sdk import tracking

    with tracking.start_run(config={"lr": 0.1}) as run:     # rank 0: an MLflow run and/or a W&B run
        for epoch in range(epochs):                          # other ranks, or no configuration: a no-op
            run.log({"loss": loss}, step=epoch)

Configuration comes from the environment the operator injects (``spec.tracking`` or the namespace's
``devservers-defaults``, see ``tracking_settings``): ``MLFLOW_TRACKING_URI`` selects MLflow,
``WANDB_PROJECT`` selects Weights & Biases, both select both. The credentials (``MLFLOW_TRACKING_TOKEN``...,
``WANDB_API_KEY``) are read by the libraries themselves, never by this module.

Why rank 0 only: under torchrun every process runs the script, and N runs per launch, each with a 1/N
share of nothing, is what made runs unreadable. The other ranks get a disabled run whose calls do nothing,
so scripts need no ``if rank == 0``.

Every run says where it came from, as MLflow tags (``devservers.*``) and in W&B's config (``devservers``)
and tags: the DevServer, namespace, owner, flavor, image, world size (pods), processes per node, the
launch's run group (``launch()`` sets ``DEVSERVERS_RUN_GROUP`` and ``WANDB_RUN_GROUP``, so the runs of
one launch group together in W&B and can be found by tag in MLflow) and the git commit of the code: of the
local working directory a launch uploaded (``DEVSERVERS_GIT_COMMIT``; the upload leaves ``.git`` behind),
else of the current directory when it is a checkout; also as MLflow's own ``mlflow.source.git.commit``.

``mlflow`` and ``wandb`` are optional (``pip install 'devservers[tracking]'``) and imported only here, only
when a run starts: importing ``devservers_sdk`` never loads them.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from .errors import TrackingUnavailableError
from .tracking_settings import GIT_COMMIT_ENV, RUN_GROUP_ENV

__all__ = [
    "TAG_PREFIX",
    "TrackingRun",
    "TrackingUnavailableError",
    "configured_tools",
    "git_commit",
    "run_tags",
    "start_run",
]

TAG_PREFIX = "devservers."
Tool = Literal["mlflow", "wandb"]


def _rank(environ: Mapping[str, str]) -> int:
    try:
        return int(environ.get("RANK", "0"))
    except ValueError:
        return 0


def configured_tools(environ: Mapping[str, str] | None = None) -> list[Tool]:
    """The tools the environment configures: ``mlflow`` with ``MLFLOW_TRACKING_URI``, ``wandb`` with
    ``WANDB_PROJECT``."""
    environ = os.environ if environ is None else environ
    tools: list[Tool] = []
    if environ.get("MLFLOW_TRACKING_URI"):
        tools.append("mlflow")
    if environ.get("WANDB_PROJECT"):
        tools.append("wandb")
    return tools


def git_commit(directory: str | os.PathLike[str]) -> str | None:
    """The commit checked out in ``directory`` or a parent, read from ``.git`` (no git program needed in the
    image); None outside a checkout or when HEAD cannot be resolved."""
    here = Path(directory).resolve()
    for folder in (here, *here.parents):
        dot_git = folder / ".git"
        if dot_git.is_file():  # a worktree or submodule: "gitdir: <path>"
            text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
            if not text.startswith("gitdir:"):
                return None
            dot_git = (folder / text.removeprefix("gitdir:").strip()).resolve()
        if dot_git.is_dir():
            return _resolve_head(dot_git)
    return None


def _resolve_head(git_dir: Path) -> str | None:
    try:
        head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not head.startswith("ref:"):
        return head or None
    ref = head.removeprefix("ref:").strip()
    common = git_dir
    commondir = git_dir / "commondir"  # worktrees keep their branches in the main repository
    with contextlib.suppress(OSError):
        common = (git_dir / commondir.read_text(encoding="utf-8").strip()).resolve()
    for base in (git_dir, common):
        with contextlib.suppress(OSError):
            return (base / ref).read_text(encoding="utf-8").strip() or None
        with contextlib.suppress(OSError):
            for line in (base / "packed-refs").read_text(encoding="utf-8").splitlines():
                sha, _, name = line.partition(" ")
                if name == ref:
                    return sha
    return None


def run_tags(environ: Mapping[str, str] | None = None, *, workdir: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Where the run comes from, from the DevServer's environment (empty values left out)."""
    environ = os.environ if environ is None else environ
    values = {
        "devserver": environ.get("DEVSERVER_NAME"),
        "namespace": environ.get("DEVSERVER_NAMESPACE"),
        "owner": environ.get("DEVSERVER_OWNER"),
        "flavor": environ.get("DEVSERVER_FLAVOR"),
        "image": environ.get("DEVSERVER_IMAGE"),
        "world_size": environ.get("NNODES") or ("1" if environ.get("DEVSERVER_NAME") else None),
        "nprocs_per_node": environ.get("LOCAL_WORLD_SIZE") or environ.get("NPROC_PER_NODE"),
        "processes": environ.get("WORLD_SIZE"),
        "run_group": environ.get(RUN_GROUP_ENV) or environ.get("WANDB_RUN_GROUP"),
        "git_commit": environ.get(GIT_COMMIT_ENV) or git_commit(workdir if workdir is not None else os.getcwd()),
    }
    return {TAG_PREFIX + key: str(value) for key, value in values.items() if value}


class TrackingRun:
    """A run on every configured tool, or a disabled one (``enabled`` False) whose methods do nothing.

    Attributes:
        enabled: whether anything is recorded (rank 0 with at least one tool configured).
        tools: the tools recording this run.
        tags: the ``devservers.*`` tags it carries.
        mlflow_run_id: the MLflow run's id, when MLflow records it.
        wandb_run: the ``wandb`` Run object, when W&B records it (its ``dir`` is the run's directory).
    """

    def __init__(self, tools: list[Tool], tags: dict[str, str]) -> None:
        self.tools = tools
        self.tags = tags
        self.mlflow_run_id: str | None = None
        self.wandb_run: Any = None
        self._mlflow: Any = None
        self._finished = False

    @property
    def enabled(self) -> bool:
        return bool(self.tools) and not self._finished

    def _start(self, name: str | None, config: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        if "mlflow" in self.tools:
            self._start_mlflow(name, config, environ)
        if "wandb" in self.tools:
            self._start_wandb(name, config, environ)

    def _start_mlflow(self, name: str | None, config: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        try:
            from mlflow import MlflowClient
            from mlflow.entities import Param
            from mlflow.exceptions import MlflowException
        except ImportError as exc:
            raise TrackingUnavailableError(
                "MLflow tracking is configured (MLFLOW_TRACKING_URI) but mlflow is not installed in this Python; "
                "install it with: pip install 'devservers[tracking]'") from exc
        client = MlflowClient(tracking_uri=environ["MLFLOW_TRACKING_URI"])
        experiment = environ.get("MLFLOW_EXPERIMENT_NAME") or environ.get("DEVSERVER_NAME") or "Default"
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            experiment_id = found.experiment_id
        else:
            try:
                experiment_id = client.create_experiment(experiment)
            except MlflowException:  # created meanwhile by another launch
                again = client.get_experiment_by_name(experiment)
                if again is None:
                    raise
                experiment_id = again.experiment_id
        tags = dict(self.tags)
        if TAG_PREFIX + "git_commit" in tags:
            tags["mlflow.source.git.commit"] = tags[TAG_PREFIX + "git_commit"]
        run = client.create_run(experiment_id, run_name=name, tags=tags)
        self._mlflow = client
        self.mlflow_run_id = run.info.run_id
        if config:
            params = [Param(str(key), str(value)[:6000]) for key, value in config.items()]
            client.log_batch(self.mlflow_run_id, params=params)

    def _start_wandb(self, name: str | None, config: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        try:
            import wandb
        except ImportError as exc:
            raise TrackingUnavailableError(
                "Weights & Biases tracking is configured (WANDB_PROJECT) but wandb is not installed in this "
                "Python; install it with: pip install 'devservers[tracking]'") from exc
        short = {key.removeprefix(TAG_PREFIX): value for key, value in self.tags.items()}
        # The run directory goes to WANDB_DIR, else the home (the persistent volume), not the working
        # directory: a synced checkout would otherwise fill up with wandb/ folders.
        directory = environ.get("WANDB_DIR") or environ.get("HOME") or os.getcwd()
        self.wandb_run = wandb.init(
            project=environ.get("WANDB_PROJECT"),
            entity=environ.get("WANDB_ENTITY") or None,
            group=short.get("run_group"),
            name=name,
            dir=directory,
            config={**config, "devservers": short},
            tags=[f"{key}:{value}"[:64] for key, value in short.items() if key != "git_commit"],
            settings=wandb.Settings(console="off"),
        )

    def log(self, metrics: Mapping[str, float], *, step: int | None = None) -> None:
        """Record ``metrics`` (name to number) at ``step`` (e.g. the epoch) on every tool."""
        if not self.enabled:
            return
        if self._mlflow is not None and self.mlflow_run_id is not None:
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            self._mlflow.log_batch(self.mlflow_run_id, metrics=[
                Metric(str(key), float(value), now, step or 0) for key, value in metrics.items()])
        if self.wandb_run is not None:
            self.wandb_run.log(dict(metrics), step=step)

    def finish(self, *, failed: bool = False) -> None:
        """End the run on every tool (FINISHED, or FAILED with ``failed``); later calls do nothing."""
        if not self.enabled:
            return
        self._finished = True
        if self._mlflow is not None and self.mlflow_run_id is not None:
            self._mlflow.set_terminated(self.mlflow_run_id, status="FAILED" if failed else "FINISHED")
        if self.wandb_run is not None:
            self.wandb_run.finish(exit_code=1 if failed else 0)

    def __enter__(self) -> TrackingRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.finish(failed=exc_type is not None)

    def __repr__(self) -> str:
        state = "enabled" if self.enabled else "disabled"
        return f"<TrackingRun {state} tools={self.tools} mlflow_run_id={self.mlflow_run_id!r}>"


def start_run(name: str | None = None, *, config: Mapping[str, Any] | None = None, tool: Tool | None = None,
              environ: Mapping[str, str] | None = None) -> TrackingRun:
    """Start a tracked run on rank 0 with the configured tool(s); elsewhere, a run that does nothing.

    Args:
        name: the run's name. None: the tool's default.
        config: hyperparameters, as MLflow params and W&B config.
        tool: only this tool, when both are configured. None: every configured tool.
        environ: the environment to read (default ``os.environ``).

    Returns:
        A ``TrackingRun``; use it as a context manager, or call ``finish()``. Disabled (a no-op) on a rank
        other than 0 (torchrun's ``RANK``) and when no tool is configured.

    Raises:
        TrackingUnavailableError: a tool is configured but its library is not installed.
    """
    environ = dict(os.environ if environ is None else environ)
    tools = [found for found in configured_tools(environ) if tool is None or found == tool]
    if _rank(environ) != 0:
        tools = []
    run = TrackingRun(tools, run_tags(environ) if tools else {})
    if tools:
        run._start(name, dict(config or {}), environ)
    return run
