"""The web dashboard behind ``devctl ui``: a page per DevServer and a live list, served on 127.0.0.1.

It is a thin front end like ``devctl`` and the magics: every request becomes one SDK call made with the
user's own kubeconfig (as ``kubectl proxy`` and Headlamp's desktop app do), so nothing is deployed in the
cluster and no new credential exists. The pages are rendered here and need a little plain JavaScript
(``static/``), shipped in the wheel: no Node.js, no build step, no third-party front-end code.

* ``app``: the aiohttp application, its routes and the guard (token cookie, same-origin writes).
* ``live``: one SDK watch shared by every open page, fanned out as server-sent events.
* ``pages``: the HTML.
* ``forms``: what the create form sends, turned into the SDK's arguments and its per-field errors.
"""

from __future__ import annotations

from .app import Dashboard, serve

__all__ = ["Dashboard", "serve"]
