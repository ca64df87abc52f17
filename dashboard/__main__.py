"""`python -m dashboard`: the live page and history of every edge-emotion device on a broker.

    python -m dashboard --broker mqtt://localhost:1883            # http://127.0.0.1:8080/
    python -m dashboard --host 0.0.0.0 --access-token-file /etc/edge-emotion/dashboard-token

Start-up problems (a bad flag or broker URL, a history file that cannot be written, a port in
use, a network address without an access token) print one line on stderr and exit 2. An
unreachable broker is not one: the page shows it and the dashboard retries with backoff.
SIGTERM/SIGINT write what is queued to the history and exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from typing import Any

from aiohttp import web

from dashboard.config import ConfigError, DashboardConfig, load_config
from dashboard.device_messages import DeviceMessage
from dashboard.history_store import HistoryStore, StoreError
from dashboard.live_push import LivePush
from dashboard.live_state import LiveState
from dashboard.mqtt_ingest import MqttIngest
from dashboard.web_access import check_exposure
from dashboard.web_app import build_app

log = logging.getLogger("edge-emotion.dashboard")


def setup_logging(level: str) -> None:
    """Like the daemon's: time, level, which part, one sentence; paho and aiohttp only when they warn."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%Y-%m-%d %H:%M:%S",
                        level=logging.WARNING)
    logging.getLogger("edge-emotion").setLevel(level.upper())


def seeded_state(config: DashboardConfig, store: HistoryStore) -> LiveState:
    """The devices and recent traces from the history, so a restart shows them before any message."""
    state = LiveState(config.trace_minutes)
    known = store.known_devices()
    since = time.time() - state.trace_s
    state.seed(known, {d["device"]: store.recent_events(d["device"], since) for d in known})
    return state


async def serve(config: DashboardConfig, store: HistoryStore, access: str) -> int:
    state = seeded_state(config, store)
    ingest: MqttIngest

    def figures() -> dict[str, Any]:
        return {"received": ingest.received, "stored": store.stored, "backlog": store.backlog,
                "rejected": store.rejected + ingest.malformed, "mqtt_connected": ingest.connected,
                "devices": len(state.devices), "pages": push.pages}

    push = LivePush(state, figures)

    def deliver(message: DeviceMessage) -> None:
        store.put(message)
        push.submit(message)

    ingest = MqttIngest(config, deliver)
    push.attach(asyncio.get_running_loop())
    runner = web.AppRunner(build_app(store, push, config.retention_days * 86400.0, config.access_token),
                           access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.host, config.port).start()
    except OSError as exc:
        await runner.cleanup()
        print(f"dashboard: cannot serve on {config.host}:{config.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    store.start()
    ingest.start()
    log.info("dashboard on http://%s:%d/ (%s); history in %s, kept %g days", config.host, config.port, access,
             config.db_path, config.retention_days)
    pushing = asyncio.create_task(push.run())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("stopping: writing %d queued messages to the history", store.backlog)
    ingest.stop()
    pushing.cancel()
    await runner.cleanup()
    await loop.run_in_executor(None, store.close)
    log.info("stopped; %d events stored this run", store.stored)
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        config = load_config(argv)
        access = check_exposure(config.host, config.access_token)
        store = HistoryStore(config.db_path, config.retention_days * 86400.0).open()
    except (ConfigError, StoreError) as exc:
        print(f"dashboard: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)
    return asyncio.run(serve(config, store, access))


if __name__ == "__main__":
    sys.exit(main())
