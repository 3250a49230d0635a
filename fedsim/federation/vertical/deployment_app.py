"""Module-level split-learning apps for ``flwr run`` (deployment engine).

Flower loads ``fedsim.federation.vertical.deployment_app:server_app`` / ``:client_app``; both read their settings
from configs instead of closures: the ServerApp the plan file named by run config ``plan``, each
ClientApp its own bundle named by node config ``bundle`` (and ``capture-dir`` to record its traffic).
Kept apart from the factories so importing the package does not load Flower.
"""

from fedsim.federation.vertical.client_app import make_client_app
from fedsim.federation.vertical.server_app import make_server_app

client_app = make_client_app()
server_app = make_server_app()
