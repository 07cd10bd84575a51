"""The emulator's application, in the wire format of the provider it plays: the gateway's routes
(:mod:`runner.emulator.app`), fal's or Kling's (:mod:`runner.emulator.fal_api`,
:mod:`runner.emulator.kling_api`), then the routes every format shares.

Apart from :mod:`runner.emulator.app` because fal's and Kling's routes are built from its
handlers: one module above all three keeps the imports one-way.
"""

from __future__ import annotations

from aiohttp import web

from runner.emulator import fal_api, kling_api
from runner.emulator.app import (
    CORE,
    CREATE_PATH,
    MAX_BODY,
    TASK_PREFIX,
    UPLOAD_PREFIX,
    EmulatorCore,
    create_task,
    gateway_middleware,
    get_file,
    get_result,
    get_stats,
    get_task,
    middleware_for,
    upload_base64,
    upload_stream,
    upload_url,
)


def build_app(core: EmulatorCore) -> web.Application:
    """The aiohttp application serving ``core`` in its provider's wire format (the task
    board, files, result links, faults and stats are the same for every format; tasks are
    charged in that provider's own unit at its prices, runner.core.money)."""
    provider = core.provider
    if provider == "gateway":
        app = web.Application(middlewares=[gateway_middleware], client_max_size=MAX_BODY)
        app.router.add_post(CREATE_PATH, create_task)
        app.router.add_get(TASK_PREFIX + "{task_id}", get_task)
    else:
        module = {"fal": fal_api, "kling": kling_api}[provider]
        app = web.Application(middlewares=[middleware_for(module.WIRE)],
                              client_max_size=MAX_BODY)
        module.add_routes(app)
    app[CORE] = core
    app.router.add_post(UPLOAD_PREFIX + "base64", upload_base64)
    app.router.add_post(UPLOAD_PREFIX + "stream", upload_stream)
    app.router.add_post(UPLOAD_PREFIX + "url", upload_url)
    app.router.add_get("/files/{file_id}/{name}", get_file)
    app.router.add_get("/api/v1/files/download/{file_id}", get_file)
    app.router.add_get("/results/{name}", get_result)
    app.router.add_get("/_emulator/stats", get_stats)
    return app
