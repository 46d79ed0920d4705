"""The HTML of the dashboard, rendered here so the browser needs only a little JavaScript.

Every value that comes from the cluster goes through ``escape``; the pages carry no inline script or
style (the Content-Security-Policy forbids them), and pass what the script needs in ``data-`` attributes.
A list row is rendered only here, also for the live updates: the server sends the row's HTML in its
event, and the script swaps the ``<tr>``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from devservers_sdk import views

if TYPE_CHECKING:
    from devservers_sdk import DevServerFlavor
    from devservers_sdk.client import DevServerDescription

__all__ = ["PHASES", "details", "error_page", "list_page", "list_row", "new_page", "server_page"]

PHASES = ("Pending", "Starting", "Running", "Stopping", "Stopped", "Failed", "Expired", "Terminating")
_UNKNOWN = "—"


def _time_left(expires_at: str | None, now: datetime | None = None) -> str:
    """Like the script's countdown, so the first paint already reads right: ``3h 59m 12s``."""
    if not expires_at:
        return "never"
    moment = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    seconds = int((moment - (now or datetime.now(UTC))).total_seconds())
    if seconds <= 0:
        return "expired"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    parts += [f"{hours}h"] if days or hours else []
    parts += [f"{minutes}m", f"{seconds}s"] if not days else [f"{minutes}m"]
    return " ".join(parts)


def _ago(moment: str | None) -> str:
    if not moment:
        return _UNKNOWN
    seconds = int((datetime.now(UTC) - datetime.fromisoformat(moment.replace("Z", "+00:00"))).total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)}s ago"
    if seconds < 3600:
        return f"{seconds // 60}m ago"
    if seconds < 86400:
        return f"{seconds // 3600}h ago"
    return f"{seconds // 86400}d ago"


def server_path(namespace: str, name: str) -> str:
    return f"/servers/{quote(namespace, safe='')}/{quote(name, safe='')}"


def _layout(title: str, body: str, *, page: str, data: dict[str, Any] | None = None) -> str:
    attributes = f' data-page="{page}"'
    if data is not None:
        attributes += f" data-config='{escape(json.dumps(data), quote=True)}'"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · devservers</title>
<link rel="stylesheet" href="/static/dashboard.css">
<script src="/static/dashboard.js" defer></script>
</head>
<body{attributes}>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <nav aria-label="Main">
    <a href="/" class="brand">devservers</a>
    <a href="/">DevServers</a>
    <a href="/new">New DevServer</a>
  </nav>
</header>
<main id="main">
{body}
</main>
</body>
</html>
"""


# -- the list --------------------------------------------------------------------------------------------

def list_row(item: dict[str, Any]) -> str:
    """One ``<tr>`` of the list (also sent, as HTML, in each live update)."""
    namespace, name, phase = item["namespace"], item["name"], item["phase"]
    key = f"{namespace}/{name}"
    shown_phase = "Deleting" if item.get("deleting") else phase
    return (
        f'<tr data-key="{escape(key)}" data-namespace="{escape(namespace)}" data-phase="{escape(phase)}">'
        f'<th scope="row"><a href="{server_path(namespace, name)}">{escape(name)}</a></th>'
        f"<td>{escape(namespace)}</td>"
        f"<td>{escape(item['owner'])}</td>"
        f"<td>{escape(item['flavor'])}</td>"
        f'<td><span class="phase phase-{escape(phase.lower())}">{escape(shown_phase)}</span></td>'
        f"<td>{escape(item['ready'])}</td>"
        f'<td class="countdown" data-expires-at="{escape(item["expiresAt"] or "")}">'
        f"{escape(_time_left(item['expiresAt']))}</td>"
        f'<td class="ago" data-at="{escape(item["lastActivity"] or "")}">{escape(_ago(item["lastActivity"]))}</td>'
        f'<td class="message">{escape(item["message"])}</td>'
        "</tr>"
    )


def list_page(rows: list[dict[str, Any]], *, namespaces: list[str], where: str, error: str | None) -> str:
    namespace_options = "".join(f'<option value="{escape(ns)}">{escape(ns)}</option>' for ns in namespaces)
    phase_options = "".join(f'<option value="{p}">{p}</option>' for p in PHASES)
    body = "".join(list_row(item) for item in rows)
    problem = f'<p class="error" role="alert" id="live-error">{escape(error)}</p>' if error else \
        '<p class="error" role="alert" id="live-error" hidden></p>'
    return _layout("DevServers", f"""
<div class="heading">
  <h1>DevServers</h1>
  <p class="where">{escape(where)}</p>
</div>
<form class="filters" id="filters" role="search" aria-label="Filter DevServers">
  <label for="namespace-filter">Namespace</label>
  <select id="namespace-filter" name="namespace"><option value="">All</option>{namespace_options}</select>
  <label for="phase-filter">Phase</label>
  <select id="phase-filter" name="phase"><option value="">All</option>{phase_options}</select>
  <span id="live-state" class="live" role="status">connecting…</span>
</form>
{problem}
<div class="table-wrap">
<table id="servers" class="servers">
  <caption class="visually-hidden">DevServers, updated live</caption>
  <thead><tr>
    <th scope="col">Name</th><th scope="col">Namespace</th><th scope="col">Owner</th><th scope="col">Flavor</th>
    <th scope="col">Phase</th><th scope="col">Ready</th><th scope="col">Expires in</th>
    <th scope="col">Last activity</th><th scope="col">Status message</th>
  </tr></thead>
  <tbody>{body}</tbody>
</table>
</div>
<p id="empty" class="empty"{" hidden" if rows else ""}>No DevServers here yet. <a href="/new">Create one</a>.</p>
""", page="list")


# -- the create form -------------------------------------------------------------------------------------

def _flavor_label(flavor: DevServerFlavor) -> str:
    parts = [f"{flavor.cpu or '?'} CPU", f"{flavor.memory or '?'} memory", f"{flavor.gpus} GPU"]
    if flavor.capacity_type == "spot":
        parts.append("spot: may be interrupted")
    text = f"{flavor.name}: {', '.join(parts)}"
    if flavor.spec.description:
        text += f" ({flavor.spec.description})"
    return text


def _smallest_cpu_flavor(flavors: list[DevServerFlavor]) -> str:
    """The menu starts on the cheapest CPU size: a click on Create should not reserve a GPU."""
    from devservers_sdk import parse_quantity

    cpu_only = [f for f in flavors if f.gpus == 0] or flavors
    if not cpu_only:
        return ""
    return min(cpu_only, key=lambda f: (parse_quantity(f.cpu) if f.cpu else 0, f.name)).name


def _field(name: str, label: str, control: str, hint: str = "") -> str:
    hint_html = f'<p class="hint" id="{name}-hint">{escape(hint)}</p>' if hint else ""
    return (f'<div class="field" data-field="{name}"><label for="{name}">{escape(label)}</label>{control}'
            f'{hint_html}<p class="field-error" id="{name}-error" role="alert" hidden></p></div>')


def _described(name: str, hint: bool) -> str:
    ids = f"{name}-error" + (f" {name}-hint" if hint else "")
    return f'aria-describedby="{ids}"'


def new_page(flavors: list[DevServerFlavor], *, namespace: str) -> str:
    options = "".join(
        f'<option value="{escape(f.name)}" data-image="{escape(f.spec.default_image or "")}">'
        f"{escape(_flavor_label(f))}</option>" for f in flavors)
    default = _smallest_cpu_flavor(flavors)
    options = options.replace(f'value="{escape(default)}"', f'value="{escape(default)}" selected', 1)

    def text(name: str, label: str, *, value: str = "", placeholder: str = "", hint: str = "",
             kind: str = "text") -> str:
        control = (f'<input type="{kind}" id="{name}" name="{name}" value="{escape(value)}" '
                   f'placeholder="{escape(placeholder)}" autocomplete="off" {_described(name, bool(hint))}>')
        return _field(name, label, control, hint)

    body = f"""
<h1>New DevServer</h1>
<p class="where">In namespace <strong>{escape(namespace)}</strong>. Every rule is checked before anything is sent.</p>
<form id="create-form" class="create" novalidate>
<p class="field-error form-error" id="form-error" role="alert" hidden></p>
{text("name", "Name", placeholder="alice-dev", hint="Lowercase letters, digits and -, starting with a letter.")}
{_field("flavor", "Flavor", f'<select id="flavor" name="flavor" {_described("flavor", True)}>{options}</select>',
        "CPU, memory and GPUs of each pod.")}
{text("image", "Image", placeholder="the flavor's default image", hint="Leave empty for the flavor's image.")}
<fieldset>
  <legend>Home volume</legend>
  <div class="check"><input type="checkbox" id="homeEnabled" name="homeEnabled" checked>
    <label for="homeEnabled">Persistent home (kept across stops, deleted with the DevServer)</label></div>
  {text("homeSize", "Home size", placeholder="the flavor's default",
        hint="A Kubernetes quantity, e.g. 10Gi or 100Gi; empty: the flavor's default size.")}
</fieldset>
<fieldset>
  <legend>Lifecycle</legend>
  {text("timeToLive", "Time to live", value="8h", hint="Deleted after this long, e.g. 30m, 4h, 1h30m, 2d.")}
  {text("idleTimeout", "Idle timeout", placeholder="the flavor's default",
        hint="Stopped after this long without activity (at least 1m), e.g. 2h.")}
  <div class="check"><input type="checkbox" id="autoShutdown" name="autoShutdown" checked>
    <label for="autoShutdown">Stop when idle</label></div>
</fieldset>
<fieldset>
  <legend>Distributed</legend>
  <div class="check"><input type="checkbox" id="distributed" name="distributed" aria-describedby="distributed-error">
    <label for="distributed">A torchrun group of pods</label></div>
  <p class="field-error" id="distributed-error" role="alert" hidden></p>
  <div id="distributed-options" class="distributed-options" hidden>
  {text("worldSize", "World size (pods)", value="2", kind="number")}
  {text("nprocsPerNode", "Processes per pod", value="1", kind="number")}
  {_field("backend", "Backend", '<select id="backend" name="backend" aria-describedby="backend-error">'
          '<option value="nccl">nccl (GPUs)</option><option value="gloo">gloo (CPUs)</option></select>')}
  {_field("ncclSettings", "NCCL settings",
          '<textarea id="ncclSettings" name="ncclSettings" rows="2" placeholder="NCCL_DEBUG=INFO" '
          'aria-describedby="ncclSettings-error ncclSettings-hint"></textarea>', "One KEY=VALUE per line.")}
  </div>
</fieldset>
{text("sharedVolume", "Shared volume claim", placeholder="optional",
      hint="An existing PersistentVolumeClaim, mounted at /shared.")}
<div class="buttons"><button type="submit" id="create">Create</button>
<span id="create-state" role="status"></span></div>
</form>
"""
    return _layout("New DevServer", body, page="new")


# -- a server's page ------------------------------------------------------------------------------------

def _tracking_section(description: DevServerDescription) -> str:
    """Where the server's runs go, with a link to the MLflow server or the W&B project; Secrets by name only."""
    mlflow, wandb = description.tracking.get("mlflow"), description.tracking.get("wandb")
    if not mlflow and not wandb:
        return ""
    items = []
    if mlflow:
        uri = mlflow["trackingUri"]
        experiment = mlflow.get("experiment") or description.devserver.name
        where = (f'<a href="{escape(uri)}" rel="noopener noreferrer" target="_blank">{escape(uri)}</a>'
                 if uri.startswith(("http://", "https://")) else escape(uri))
        items.append(("MLflow", f"{where}, experiment {escape(experiment)} ({escape(mlflow['from'])})"))
    if wandb:
        project = wandb["project"]
        if wandb.get("entity"):
            url = f"https://wandb.ai/{quote(wandb['entity'])}/{quote(project)}"
            shown = (f'<a href="{escape(url)}" rel="noopener noreferrer" target="_blank">'
                     f'{escape(wandb["entity"])}/{escape(project)}</a>')
        else:
            shown = f"project {escape(project)}"
        items.append(("Weights &amp; Biases", f"{shown} ({escape(wandb['from'])})"))
    dl = "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in items)
    return (f'<section aria-labelledby="tracking-heading" class="card"><h2 id="tracking-heading">Experiment '
            f'tracking</h2><dl id="tracking">{dl}</dl></section>\n')


def _table(headers: list[str], rows: list[list[str]], *, empty: str, table_id: str) -> str:
    if not rows:
        return f'<p class="empty" id="{table_id}-empty">{escape(empty)}</p>'
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<div class="table-wrap"><table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _home(asked: str | None, built: str | None) -> str:
    from devservers_sdk import parse_quantity

    if asked is not None and parse_quantity(asked) == 0:
        return "none"
    if asked is None:
        return f"{built} (default size)" if built else "the default size"
    return asked


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else _UNKNOWN


def details(description: DevServerDescription, item: dict[str, Any]) -> str:
    """The live part of a server's page: refetched and swapped whenever the DevServer changes."""
    server = description.devserver
    spec, status = server.spec, server.status
    lifecycle = spec.lifecycle
    spec_rows = [
        ["Owner", spec.owner], ["Flavor", spec.flavor], ["Image", spec.image or "the flavor's default"],
        ["Mode", spec.mode],
        ["Home volume", _home(spec.persistent_home_size, status.home_size)],
        ["Shared volume", spec.shared_volume_claim_name or "none"],
        ["Time to live", lifecycle.time_to_live or "not set"],
        ["Expiration time", _when(lifecycle.expiration_time) if lifecycle.expiration_time else "not set"],
        ["Idle timeout", f"{lifecycle.idle_timeout}s" if lifecycle.idle_timeout else "the flavor's default"],
        ["Stop when idle", "yes" if lifecycle.auto_shutdown else "no"],
    ]
    if spec.distributed is not None:
        nccl = ", ".join(f"{k}={v}" for k, v in spec.distributed.nccl_settings.items()) or "none"
        spec_rows += [["World size", str(spec.distributed.world_size)],
                      ["Processes per pod", str(spec.distributed.nprocs_per_node)
                       + (f" ({status.nprocs_per_node})" if spec.distributed.nprocs_per_node == "auto"
                          and status.nprocs_per_node else "")],
                      ["Backend", spec.distributed.backend], ["NCCL settings", nccl]]
    status_rows = [
        ["Phase", item["phase"]], ["Ready pods", item["ready"]], ["Message", status.message or _UNKNOWN],
        ["Expires at", _when(views.expires_at(server, max_time_to_live=description.max_time_to_live))],
        ["Last activity", f"{_when(status.last_activity_time)} ({status.last_activity_source or 'unknown source'})"
         if status.last_activity_time else _UNKNOWN],
        ["Stopped", f"{status.stopped_reason or 'by request'} at {_when(status.stopped_at)}"
         if status.stopped_at else "no"],
        ["Observed generation", f"{status.observed_generation} of {server.metadata.generation}"
         if status.observed_generation is not None else _UNKNOWN],
    ]
    if status.gpus:
        status_rows.append(["GPU use", "; ".join(
            f"rank {g.rank} GPU {g.index}: {g.utilization:.0f}%"
            + (f", {g.memory_used_mib:.0f} of {g.memory_total_mib:.0f} MiB"
               if g.memory_used_mib is not None and g.memory_total_mib is not None else "")
            for g in status.gpus) + f" (read {_when(status.gpus[0].observed_at)})"])
    if status.cost is not None:
        from devservers_sdk.cost import cost_at, format_money

        amount, pod_seconds = cost_at(status.cost, datetime.now(UTC))
        status_rows.append(["Cost so far", f"{format_money(amount, status.cost.currency)} "
                            f"({pod_seconds / 3600:.2f} pod-hours at {status.cost.per_hour} per pod-hour)"])
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in spec_rows)
    sl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in status_rows)
    conditions = [[c.type, c.status, c.reason, _when(c.last_transition_time), c.message]
                  for c in status.conditions]
    pods = [[_UNKNOWN if p.rank is None else str(p.rank), p.name, p.phase, "yes" if p.ready else "no",
             str(p.restarts), p.node or _UNKNOWN, p.message or ""] for p in description.pods]
    events = [[_when(e.last_seen), e.type, e.reason, e.object, str(e.count), e.message]
              for e in reversed(description.events)]
    ranks = [str(p.rank) for p in description.pods if p.rank is not None] or ["0"]
    phase = item["phase"]
    return f"""
<div id="details" data-phase="{escape(phase)}" data-expires-at="{escape(item['expiresAt'] or '')}"
     data-ranks="{escape(','.join(ranks))}" data-flavor="{escape(spec.flavor)}"
     data-resource-version="{escape(item['resourceVersion'])}">
<section aria-labelledby="lifecycle-heading" class="card lifecycle">
  <h2 id="lifecycle-heading">Lifecycle</h2>
  <p class="big">Phase <span id="phase" class="phase phase-{escape(phase.lower())}">{escape(phase)}</span>
  {'<span class="deleting">being deleted</span>' if item.get("deleting") else ""}</p>
  <p class="big">Expires in <span id="countdown" class="countdown" data-expires-at="{escape(item['expiresAt'] or '')}"
   >{escape(_time_left(item['expiresAt']))}</span></p>
  <p>{escape(status.message or "")}</p>
</section>
<div class="columns">
<section aria-labelledby="spec-heading" class="card"><h2 id="spec-heading">Spec</h2><dl id="spec">{dl}</dl></section>
<section aria-labelledby="status-heading" class="card"><h2 id="status-heading">Status</h2><dl id="status">{sl}</dl></section>
</div>
{_tracking_section(description)}<section aria-labelledby="conditions-heading" class="card"><h2 id="conditions-heading">Conditions</h2>
{_table(["Type", "Status", "Reason", "Since", "Message"], conditions, empty="No conditions reported yet.", table_id="conditions")}
</section>
<section aria-labelledby="pods-heading" class="card"><h2 id="pods-heading">Pods</h2>
{_table(["Rank", "Pod", "Phase", "Ready", "Restarts", "Node", "Message"], pods, empty="No pods (stopped, or not created yet).", table_id="pods")}
</section>
<section aria-labelledby="events-heading" class="card"><h2 id="events-heading">Recent events</h2>
{_table(["Last seen", "Type", "Reason", "Object", "Count", "Message"], events, empty="No recent events.", table_id="events")}
</section>
</div>
"""


def server_page(description: DevServerDescription, item: dict[str, Any], *, flavors: list[DevServerFlavor],
                default_namespace: str, jupyter: bool) -> str:
    server = description.devserver
    namespace, name = server.namespace or "", server.name
    flag = "" if namespace == default_namespace else f" -n {namespace}"
    flavor_options = "".join(
        f'<option value="{escape(f.name)}"{" selected" if f.name == server.spec.flavor else ""}>'
        f"{escape(_flavor_label(f))}</option>" for f in flavors)
    jupyter_button = ('<button type="button" id="open-jupyter">Open JupyterLab</button>' if jupyter else "")
    body = f"""
<div class="heading">
  <h1>{escape(name)}</h1>
  <p class="where">DevServer in namespace <strong>{escape(namespace)}</strong> · <a href="/">all DevServers</a></p>
</div>
<section aria-labelledby="actions-heading" class="card actions">
  <h2 id="actions-heading">Actions</h2>
  <div class="action-row">
    <label for="extend-by">Extend by</label>
    <input id="extend-by" name="extendBy" value="2h" size="6" aria-describedby="extend-by-hint">
    <button type="button" id="extend">Extend</button>
    <span class="hint" id="extend-by-hint">e.g. 30m, 2h, 1d</span>
  </div>
  <div class="action-row">
    <button type="button" id="stop">Stop</button>
    <button type="button" id="start">Start</button>
    {jupyter_button}
  </div>
  <div class="action-row">
    <label for="new-flavor">Flavor</label>
    <select id="new-flavor" name="flavor">{flavor_options}</select>
    <button type="button" id="change-flavor">Change flavor</button>
  </div>
  <div class="action-row">
    <button type="button" id="delete" class="danger">Delete…</button>
  </div>
  <p id="action-state" role="status" aria-live="polite"></p>
  <dialog id="confirm-delete" aria-labelledby="confirm-delete-title">
    <form method="dialog">
      <h2 id="confirm-delete-title">Delete {escape(name)}?</h2>
      <p>Its pods and its home volumes are deleted too. This cannot be undone.</p>
      <div class="buttons">
        <button value="cancel" id="cancel-delete" autofocus>Cancel</button>
        <button value="delete" id="confirm-delete-button" class="danger">Delete {escape(name)}</button>
      </div>
    </form>
  </dialog>
</section>
<section aria-labelledby="connect-heading" class="card">
  <h2 id="connect-heading">Connect</h2>
  <p>A shell: <code id="shell-command">devctl shell {escape(name)}{escape(flag)}</code></p>
  <p>SSH (after <code>devctl ssh-config</code>): <code id="ssh-command">ssh {escape(name)}.devserver</code></p>
  <p>JupyterLab from a terminal: <code id="jupyter-command">devctl jupyter {escape(name)}{escape(flag)}</code></p>
</section>
<div id="details-slot" aria-live="off">{details(description, item)}</div>
<section aria-labelledby="logs-heading" class="card">
  <h2 id="logs-heading">Logs</h2>
  <div class="action-row">
    <label for="log-rank">Rank</label>
    <select id="log-rank" name="rank"></select>
    <input type="checkbox" id="log-follow" checked><label for="log-follow">Follow</label>
    <button type="button" id="show-logs">Show logs</button>
    <span id="log-state" role="status"></span>
  </div>
  <pre id="logs" class="logs" tabindex="0" aria-label="Log lines"></pre>
</section>
"""
    return _layout(name, body, page="server", data={"namespace": namespace, "name": name})


def error_page(title: str, message: str, *, status_hint: str = "") -> str:
    return _layout(title, f'<h1>{escape(title)}</h1><p class="error" role="alert">{escape(message)}</p>'
                          f"<p>{escape(status_hint)}</p><p><a href=\"/\">Back to the list</a></p>", page="error")
