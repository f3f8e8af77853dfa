"""saq's web dashboard for operators, at /saq (litestar-saq's controller and saq's static files).

Who: platform keys and staff with `operations:read` (looking) or `operations:write` (retrying or aborting a
job), through the permission matrix like every route. A browser does not send an API key by itself:
operators reach it through their authenticating proxy (which adds `Authorization`), or with the staff
session once the admin console exists. Without Redis (embedded) there is no queue: the dashboard lists
none.
"""

from __future__ import annotations

from typing import Any

from litestar import Router
from litestar.di import Provide
from litestar.static_files import create_static_files_router
from litestar_saq.config import SAQConfig, TaskQueues, _get_static_files
from litestar_saq.controllers import build_controller

PATH = "/saq"


def dashboard_router(queue: Any | None) -> Router:
    queues = TaskQueues({queue.name: queue} if queue is not None else {})
    static = create_static_files_router(
        directories=[_get_static_files()], path=f"{PATH}/static", name="saq", include_in_schema=False
    )
    return Router(
        path="/",
        route_handlers=[build_controller(PATH, None, False), static],
        dependencies={"task_queues": Provide(lambda: queues, sync_to_thread=False)},
        include_in_schema=False,
        # The controller's annotations name saq's types (Queue, Job, QueueInfo, TaskQueues).
        signature_namespace=SAQConfig().signature_namespace,
    )
