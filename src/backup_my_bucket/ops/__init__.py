"""Operations: backup plans from the config file, run on a schedule, watched from outside.

The layer between the CLI and the engines (docs/design.md, "Layers"): ``plans`` reads the
``[plans.NAME]`` tables, ``runner`` runs one plan (backup → gc → verify) with hooks,
notifications, metrics and a run history, ``daemon`` runs the plans on their schedules.
It drives the engines' library functions; it never talks to botocore or reads the wall clock
except through ``clock``. The optional libraries (the ``ops`` extra: prometheus-client,
apprise, cronsim) are imported only by the modules that use them, and the CLI imports those
modules only inside the plan and daemon commands, after :func:`require_extra`.
"""

from __future__ import annotations

import importlib
import importlib.util

from ..errors import MissingDependency

EXTRA_MODULES = {
    "prometheus_client": "prometheus-client",
    "cronsim": "cronsim",
    "apprise": "apprise",
}


def require_extra() -> None:
    """Fail with the install hint when a library of the ``ops`` extra is missing."""
    missing = []
    for module, package in EXTRA_MODULES.items():
        try:
            # apprise takes a while to import (its plugins): only find it; notify imports it.
            found = (
                importlib.util.find_spec(module) is not None
                if module == "apprise"
                else importlib.import_module(module) is not None
            )
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(package)
    if missing:
        raise MissingDependency(
            f"backup plans and the daemon need {', '.join(missing)}, which is not installed",
            hint="pip install 'backup-my-bucket[ops]'",
        )
