"""Fixtures shared by every app's tests: role users, API clients, a real Celery worker,
and a real browser. Each app's tests/ folder mirrors its modules."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from portal.models import User
from portal.roles import ROLES, sync_roles
from portal.testing import CORPUS, PASSWORD, UserFactory, missing_prerequisite


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    # Transactional tests flush the tables, groups included; put the roles back.
    sync_roles()

    def make(*roles: str, **kwargs: Any) -> User:
        return cast(User, UserFactory(roles=list(roles), **kwargs))

    return make


@pytest.fixture
def researcher(make_user: Callable[..., User]) -> User:
    return make_user("researcher", username="rita")


@pytest.fixture
def researcher2(make_user: Callable[..., User]) -> User:
    return make_user("researcher", username="rob")


@pytest.fixture
def reviewer(make_user: Callable[..., User]) -> User:
    return make_user("reviewer", username="vera")


@pytest.fixture
def admin_user(make_user: Callable[..., User]) -> User:
    return make_user("admin", username="ada")


@pytest.fixture
def auditor(make_user: Callable[..., User]) -> User:
    return make_user("auditor", username="otto")


@pytest.fixture
def role_users(make_user: Callable[..., User]) -> dict[str, User]:
    return {role: make_user(role, username=f"the-{role}") for role in ROLES}


@pytest.fixture
def api() -> Callable[[User | None], APIClient]:
    """An API client logged in as ``user`` (session auth), or anonymous."""

    def client_for(user: User | None = None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return client_for


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.fail(f"the shared corpus is missing at {CORPUS}", pytrace=False)
    return CORPUS


# --- a real Celery worker ----------------------------------------------------------------
def _worker_env() -> dict[str, str]:
    """The environment a worker process needs to share this test run's database and broker."""
    db = connection.settings_dict
    env = dict(os.environ)
    if db["ENGINE"].endswith("sqlite3"):
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    else:
        user = db.get("USER") or ""
        password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
        auth = f"{user}{password}@" if user else ""
        host = f"{db.get('HOST') or 'localhost'}:{db.get('PORT') or 5432}"
        env["DATABASE_URL"] = f"postgres://{auth}{host}/{db['NAME']}"
    env["PORTAL_VAR_DIR"] = str(settings.VAR_DIR)
    env["CELERY_BROKER_URL"] = settings.CELERY_BROKER_URL
    return env


@pytest.fixture
def process_env(transactional_db: None) -> dict[str, str]:
    """The environment for a process (worker, server) that shares this test's database."""
    return _worker_env()


class Worker:
    """A real ``celery worker``. ``env`` overrides its environment; ``hostname`` runs it in a
    UTS namespace of its own under that host name (as root), so it is another machine to
    every liveness check."""

    def __init__(
        self, queues: str, *, env: dict[str, str] | None = None, hostname: str | None = None
    ) -> None:
        self.queues = queues
        self.env = env or {}
        self.hostname = hostname
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(settings.VAR_DIR) / f"worker-{os.getpid()}-{time.monotonic_ns()}.log"

    def start(self) -> Worker:
        celery = str(Path(sys.executable).with_name("celery"))
        prefix: list[str] = []
        if self.hostname:
            prefix = [
                "unshare",
                "--uts",
                "sh",
                "-c",
                f'hostname {self.hostname} && exec "$@"',
                "sh",
            ]
        self.proc = subprocess.Popen(
            [
                *prefix,
                celery,
                "-A",
                "portal",
                "worker",
                "-Q",
                self.queues,
                "--concurrency=1",
                "--loglevel=INFO",
                "-n",
                f"test-{time.monotonic_ns()}@%h",
                "--without-mingle",
                "--without-gossip",
            ],
            env={**_worker_env(), **self.env},
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def purge_broker() -> None:
    from portal.celery import app

    app.control.purge()


@pytest.fixture
def celery_worker(transactional_db: None) -> Iterator[Callable[..., Worker]]:
    """Start real ``celery worker`` processes on this test's database; stopped afterwards."""
    purge_broker()
    started: list[Worker] = []

    def start(
        queues: str = ",".join(settings.CELERY_TASK_QUEUES_NAMES),
        *,
        env: dict[str, str] | None = None,
        hostname: str | None = None,
    ) -> Worker:
        worker = Worker(queues, env=env, hostname=hostname).start()
        started.append(worker)
        return worker

    yield start
    # The test is over: kill the workers outright. A warm shutdown (stop) waits out the
    # consumer's 2-second poll and the pool's join, about 6 s a worker and 30 s for one with a
    # task in hand, which was a third of the integration tests' time. Nothing a test checks
    # depends on it: tests that exercise a warm shutdown call stop() themselves, a killed
    # worker's unacknowledged messages are purged below, and the database is flushed after.
    for worker in started:
        worker.kill()
    purge_broker()


# --- the portal as `make run` starts it -------------------------------------------------------
class PortalServer:
    """``manage.py run_portal`` (gunicorn, a worker, beat) on a free port, on this test's
    database; ``output()`` is what it printed."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        self.base = f"http://127.0.0.1:{port}"
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "run_portal", "--host", "127.0.0.1", "--port", str(port)],
            cwd=Path(__file__).resolve().parent,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture
def portal_server(
    process_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., PortalServer]]:
    """Start the portal with extra environment variables; stopped (SIGTERM) afterwards."""
    started: list[PortalServer] = []

    def start(**env: str) -> PortalServer:
        server = PortalServer({**process_env, **env}, tmp_path / f"run_portal-{len(started)}.log")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# --- a real browser ------------------------------------------------------------------------
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        missing_prerequisite(f"Chromium ({CHROMIUM}; apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; Django's ORM calls made by
    # fixtures in the same thread are still synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(15_000)
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture
def login(page: Any) -> Callable[[User], Any]:
    def do_login(user: User) -> Any:
        page.goto("/accounts/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(lambda url: "/accounts/login/" not in url)
        return page

    return do_login


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config: pytest.Config, specs: list[Any]) -> None:
    """Under pytest-xdist (``make test`` runs the fast part on two), each worker process gets
    its own var folder, ``$PORTAL_VAR_DIR/xdist-gwN``: two sharing one would share the SQLite
    test database, media, the release repository, the TUF keys and the broker folder. Settings
    read PORTAL_VAR_DIR once, when the worker starts, so it is set in the worker's environment
    (execnet's ``env:``) before that."""
    for spec in specs:
        spec.env["PORTAL_VAR_DIR"] = str(Path(settings.VAR_DIR) / f"xdist-{spec.id}")


def pytest_configure(config: pytest.Config) -> None:
    # Tests render templates without running collectstatic first.
    # Each test run starts with no log-in failures or throttle counts remembered.
    # A process (Celery worker, run_portal's gunicorn) reads portal.settings, not this: it
    # keeps the shared cache (diskcache under PORTAL_VAR_DIR, or CACHE_URL's Redis in CI).
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # As cookiecutter-django's test settings: PBKDF2 costs about 1.2 s per test user here, MD5
    # next to nothing. Test users log in to this process only (live_server is a thread of it);
    # the processes tests start authenticate with API tokens, which no hasher touches.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Tests publish many releases a minute; the throttle's own tests set a low rate.
    settings.RELEASE_PUBLISH_RATE = "10000/min"
    # Most tests gate over no stored sample and approve; the gate minimum's own tests
    # (scans/tests/test_gate_feed.py) set GATE_MIN_CLEAN_APPS = 1, the production default.
    settings.GATE_MIN_CLEAN_APPS = 0
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    from django.core.cache import cache

    cache.clear()
