"""devctl: the command line for devservers, a thin Click layer over ``devservers_sdk``.

Every command parses its flags, makes one SDK call and renders the answer (``render.render``); the SDK's
errors become one ``Error: ...`` line (``main``). ``devctl local`` runs a local cluster and the operator
in the background (``local_platform``). The package never imports ``kubernetes``, and imports the SDK only
inside the commands that need it, so ``devctl --help`` starts in well under a quarter of a second.
"""
