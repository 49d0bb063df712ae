"""Fleet simulator (issue 12, part 2): time to protection, measured on a compressed clock.

    python bench/run.py fleet
    .venv/bin/python bench/bench_fleet.py [--devices 10000] [--speed 30] [--connections 32]
        [--offline 0.10] [--beta 0.05] [--signatures 400] [--new-signatures 50]
        [--history 0] [--server auto|nginx|gunicorn] [--seed 12] [--var-dir DIR] [--out PATH]
        [--note TEXT]

Writes bench/results/fleet.json. Measures, never asserts. In one run:

1. A fresh PORTAL_VAR_DIR (a temp folder unless ``--var-dir``), ``migrate``, development TUF
   keys and repository, ``--signatures`` deployed SHA-256 hash signatures (gated by a real
   retro-hunt, as bench_releases.py makes them), release 1 published in-process
   (``release_publish(enqueue=False)`` then ``release_build``), and ``--new-signatures`` more,
   deployed and gated, waiting for release 2. ``--history N`` publishes N releases more
   (10 signatures each) before the phones start, so that targets.json lists what a portal
   in service lists (up to RELEASE_DELTA_RETENTION releases, each with its deltas); release
   numbers below then shift by N.
2. The repository folder served as production serves it: nginx with ``deploy/nginx-updates.conf``
   (started by bench_update_check.start_nginx, on private ports), else the portal under
   gunicorn as ``make run`` starts it (``/updates/`` is Django's view there). The JSON says
   which.
3. ``--devices`` phones, each a uuid4 id, ``engine.rollout.device_of`` (a ``--beta`` share on
   the beta channel; an ``--offline`` share never checks and is left out of every
   denominator) and ``engine.rollout.Schedule()`` as the phone has it. Each online phone
   starts on release 1 with release 1's ETag and does what ``client.sync.check`` does, step
   for step: at each scheduled check (the first uniform in the first 5 minutes, then
   ``Schedule.next_check``) a **real** conditional GET of ``/updates/metadata/timestamp.json``
   with its own ``If-None-Match`` over keep-alive connections; on a 200, or on a 304 with a
   pending release now due, a TUF refresh and ``choose_update(releases_of(targets))``; an
   urgent offer (and any offer on the beta channel) installed at once, a normal one kept
   pending until ``Schedule.install_at`` and installed at the first check at or after it (the
   reference client installs only in a scheduled run).
   The TUF refresh is done once per repository version, for real: ``tuf.ngclient.Updater``
   over HTTP (signatures, versions, expiry verified), its trusted targets parsed once and
   shared. Each phone is charged the bytes of the HTTP answers it would have had: its own
   conditional GET (status line, headers and body as received), and for each refresh the
   ``<root+1>.root.json`` probe (404), ``timestamp.json`` again (ngclient does not send
   If-None-Match), ``<v>.snapshot.json`` and ``<v>.targets.json`` when newer than what the
   phone trusts, then the offered target file (delta from its installed release when listed,
   else the full bundle). Each of those was fetched once over HTTP to measure its answer, and
   a target's body was checked against its signed length and SHA-256.
4. A compressed clock: ``--speed`` simulated seconds per real second. Events run in simulated
   time order and every decision uses simulated time only; real time only paces the requests.
   If the generator falls behind, its requests go out late in real time but carry their
   simulated time, so the simulated results stand (the lag is reported). Before a publish
   every request in flight is answered, then the clock stops while the release is built.
5. Scenario: at simulated minute 5 release 2 (normal: adds signatures) is published through
   the services in-process; run until 95% of online phones (of each cohort, so that each
   cohort's 95% is measured too) have it or 90 simulated minutes. Then release 3 (urgent: one
   deployed signature marked noisy) is published; run until 95% have it or 45 minutes. For
   each: minutes from publish to 50% and 95% (all, per cohort), bytes per phone (median,
   p95, total), checks, 304 share, real duration and request rate.

Not modelled: download and apply time (an install counts at the simulated second of the check
that decided it), failures and retries (none happen against a local nginx), Retry-After,
a CDN in between, phones that are switched off for a while or change network.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import heapq
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"

from engine.rollout import (  # noqa: E402 - after sys.path
    BETA,
    Device,
    ReleaseEntry,
    Schedule,
    choose_update,
    device_of,
    releases_of,
)

RESULTS = ROOT / "bench" / "results" / "fleet.json"
NGINX_TEMPLATE = ROOT / "deploy" / "nginx-updates.conf"
TIMESTAMP_PATH = "/updates/metadata/timestamp.json"
PUBLISH_AT = 300.0  # release 2 at simulated minute 5
NORMAL_LIMIT = 90 * 60.0
URGENT_LIMIT = 45 * 60.0
HISTORY_SIGNATURES = 10  # added by each --history release
SHARE = 0.95
# issue 12: a normal release on 95% of online phones within 60 minutes, an urgent one within 15
GOALS_MINUTES = {"normal": 60.0, "urgent": 15.0}


# --- set-up (Django, main thread, before the event loop) ------------------------------------


def setup(var_dir: Path, signatures: int, new_signatures: int, history: int) -> dict[str, Any]:
    """Fresh database and repository, release 1 (then ``history`` more, each adding
    ``HISTORY_SIGNATURES``) published, and the next release's new signatures waiting."""
    from bench_releases import _django, _gate, _make_signatures, _users

    # the scenario publishes a few releases in a minute: lift the per-user publish rate
    os.environ["RELEASE_PUBLISH_RATE"] = "1000/min"

    _django(var_dir)  # empties var_dir, sets PORTAL_VAR_DIR, migrates
    from django.conf import settings
    from django.db import connections

    from releases.repository import init_dev_repository

    init_dev_repository()
    author, approver = _users()
    _make_signatures(1, signatures, author, approver)
    _gate(1, signatures)
    first = last = publish(approver.pk)
    made = signatures
    for _ in range(history):
        _make_signatures(made + 1, HISTORY_SIGNATURES, author, approver)
        _gate(made + 1, HISTORY_SIGNATURES)
        made += HISTORY_SIGNATURES
        last = publish(approver.pk)
    _make_signatures(made + 1, new_signatures, author, approver)
    _gate(made + 1, new_signatures)
    connections.close_all()
    return {
        "publisher": approver.pk,
        "repo_dir": str(settings.RELEASE_REPO_DIR),
        "release_1": first,
        "start_release": last,
    }


def publish(user_pk: int, noisy: int | None = None) -> dict[str, Any]:
    """``release_publish`` then ``release_build``, in this thread, as a worker would."""
    from django.db import connections

    from portal.models import User
    from releases.models import Release, ReleaseState
    from releases.services import release_build, release_publish
    from threats.models import Signature, Status

    started = time.perf_counter()
    if noisy is not None:
        Signature.objects.filter(pk=noisy).update(status=Status.NOISY)
    release = release_publish(by=User.objects.get(pk=user_pk), enqueue=False)
    release = release_build(number=release.number)
    release = Release.objects.get(pk=release.pk)
    if release.state != ReleaseState.PUBLISHED:
        raise SystemExit(f"release {release.number} did not publish: {release.error}")
    connections.close_all()
    return {
        "release": release.number,
        "signatures": release.signature_count,
        "added": release.added_count,
        "changed": release.changed_count,
        "removed": release.removed_count,
        "noisy": release.noisy_count,
        "publish_and_build_seconds": round(time.perf_counter() - started, 3),
        "files": {f.target: f.size for f in release.files.all()},
    }


# --- the server -----------------------------------------------------------------------------


@dataclass
class Server:
    kind: str
    port: int
    description: str
    stop: Callable[[], None]


def start_server(choice: str, var_dir: Path, repo_dir: Path) -> Server:
    import bench_update_check as uc

    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if choice == "nginx" or (choice == "auto" and NGINX_TEMPLATE.exists() and Path(nginx).exists()):
        floor_port, port, nobody = uc._free_port(), uc._free_port(), uc._free_port()
        # only /updates/ is asked for: the upstream for the rest of the site stays unused
        proc, conf_dir = uc.start_nginx(var_dir, repo_dir, floor_port, port, nobody)
        version = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
        return Server(
            "nginx",
            port,
            f"{version.stderr.strip()} with deploy/nginx-updates.conf ({conf_dir / 'nginx.conf'})",
            lambda: uc._stop(proc),
        )
    port = uc._free_port()
    os.environ.update(uc._env(var_dir))
    proc, cmd, _ = uc.start_gunicorn(var_dir, port)
    return Server("gunicorn", port, " ".join(cmd), lambda: uc._stop(proc))


# --- HTTP/1.1 over keep-alive connections (stdlib asyncio) -----------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    etag: str | None
    wire_bytes: int  # status line + headers + body, as received
    body: bytes


class Connection:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def get(self, path: str, etag: str | None = None) -> Answer:
        extra = f"If-None-Match: {etag}\r\n" if etag else ""
        raw = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode("latin-1")
        for attempt in (0, 1):
            fresh = self.writer is None
            try:
                return await self._exchange(raw)
            except (OSError, asyncio.IncompleteReadError):
                self.close()
                if fresh or attempt:  # a kept-alive connection may have been closed: once more
                    raise
        raise AssertionError("unreachable")

    async def _exchange(self, raw: bytes) -> Answer:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length, etag, close, chunked = 0, None, False, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "content-length":
                length = int(value)
            elif name == "etag":
                etag = value
            elif name == "connection" and value.lower() == "close":
                close = True
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        body = b""
        wire = len(head)
        if status == 304 or status < 200:
            pass
        elif chunked:
            parts = []
            while True:
                size_line = await self.reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                wire += len(size_line) + len(chunk)
                parts.append(chunk[:-2])
                if size == 0:
                    break
            body = b"".join(parts)
        else:
            body = await self.reader.readexactly(length)
            wire += length
        if close:
            self.close()
        return Answer(status, etag, wire, body)


# --- the repository as phones see it, once per version --------------------------------------


@dataclass(frozen=True)
class RepoVersion:
    """One version of the repository (one timestamp.json), refreshed and verified once."""

    etag: str
    snapshot_version: int
    releases: list[ReleaseEntry]
    urls: dict[str, str]  # target name -> /updates/targets/<sha256>.<name>
    lengths: dict[str, int]
    sha256: dict[str, str]
    refresh_bytes: int  # <root+1>.root.json probe (404) + timestamp.json (200)
    metadata_bytes: int  # <v>.snapshot.json + <v>.targets.json


class Repository:
    """Shared by every phone: versions by ETag, and each target's answer size, measured once."""

    def __init__(self, port: int, state_dir: Path, root: bytes, pool: ThreadPoolExecutor) -> None:
        self.port = port
        self.state_dir = state_dir
        self.root = root
        self.pool = pool
        self.versions: dict[str, asyncio.Future[RepoVersion]] = {}
        self.targets: dict[str, asyncio.Future[int]] = {}
        self.log: list[dict[str, Any]] = []

    def version(self, etag: str) -> asyncio.Future[RepoVersion]:
        if etag not in self.versions:
            self.versions[etag] = asyncio.ensure_future(self._version(etag))
        return self.versions[etag]

    def target_bytes(self, version: RepoVersion, name: str) -> asyncio.Future[int]:
        if name not in self.targets:
            self.targets[name] = asyncio.ensure_future(self._target(version, name))
        return self.targets[name]

    def _refresh(self) -> tuple[int, int, dict[str, Any]]:
        """tuf.ngclient's refresh, as client.sync does it (blocking: in the worker thread)."""
        from tuf.api.metadata import Metadata
        from tuf.ngclient.updater import Updater

        base = f"http://127.0.0.1:{self.port}"
        (self.state_dir / "metadata").mkdir(parents=True, exist_ok=True)
        (self.state_dir / "downloads").mkdir(parents=True, exist_ok=True)
        Updater(
            metadata_dir=str(self.state_dir / "metadata"),
            metadata_base_url=base + "/updates/metadata/",
            target_dir=str(self.state_dir / "downloads"),
            target_base_url=base + "/updates/targets/",
            bootstrap=self.root,
        ).refresh()
        stored = self.state_dir / "metadata"
        root: Metadata[Any] = Metadata.from_bytes((stored / "root.json").read_bytes())
        stamp: Metadata[Any] = Metadata.from_bytes((stored / "timestamp.json").read_bytes())
        snap: Metadata[Any] = Metadata.from_bytes((stored / "snapshot.json").read_bytes())
        targets: Metadata[Any] = Metadata.from_bytes((stored / "targets.json").read_bytes())
        info = {
            "root_version": root.signed.version,
            "snapshot_version": stamp.signed.snapshot_meta.version,
            "targets_version": snap.signed.meta["targets.json"].version,
            "targets": {
                name: (t.custom, t.length, t.hashes["sha256"])
                for name, t in targets.signed.targets.items()
            },
        }
        return root.signed.version, stamp.signed.snapshot_meta.version, info

    async def _version(self, etag: str) -> RepoVersion:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        root_version, snapshot_version, info = await loop.run_in_executor(self.pool, self._refresh)
        conn = Connection(self.port)
        try:
            probe = await conn.get(f"/updates/metadata/{root_version + 1}.root.json")
            stamp = await conn.get(TIMESTAMP_PATH)
            snap = await conn.get(f"/updates/metadata/{snapshot_version}.snapshot.json")
            tgts = await conn.get(f"/updates/metadata/{info['targets_version']}.targets.json")
        finally:
            conn.close()
        if stamp.etag != etag:
            raise SystemExit(f"timestamp.json changed under the simulator ({etag} -> {stamp.etag})")
        if probe.status != 404 or snap.status != 200 or tgts.status != 200:
            raise SystemExit(f"metadata answers {probe.status} {snap.status} {tgts.status}")
        found = info["targets"]
        version = RepoVersion(
            etag=etag,
            snapshot_version=snapshot_version,
            releases=releases_of({name: t[0] for name, t in found.items()}),
            urls={name: f"/updates/targets/{t[2]}.{name}" for name, t in found.items()},
            lengths={name: t[1] for name, t in found.items()},
            sha256={name: t[2] for name, t in found.items()},
            refresh_bytes=probe.wire_bytes + stamp.wire_bytes,
            metadata_bytes=snap.wire_bytes + tgts.wire_bytes,
        )
        self.log.append(
            {
                "etag": etag,
                "snapshot_version": snapshot_version,
                "releases": [e.number for e in version.releases],
                "timestamp_bytes": stamp.wire_bytes,
                "root_probe_bytes": probe.wire_bytes,
                "snapshot_bytes": snap.wire_bytes,
                "targets_bytes": tgts.wire_bytes,
                "verified_by": "tuf.ngclient.Updater.refresh()",
                "refresh_seconds": round(time.perf_counter() - started, 3),
            }
        )
        return version

    async def _target(self, version: RepoVersion, name: str) -> int:
        conn = Connection(self.port)
        try:
            answer = await conn.get(version.urls[name])
        finally:
            conn.close()
        ok = (
            answer.status == 200
            and len(answer.body) == version.lengths[name]
            and hashlib.sha256(answer.body).hexdigest() == version.sha256[name]
        )
        if not ok:
            raise SystemExit(f"{name}: answer {answer.status}, not the signed file")
        return answer.wire_bytes


# --- phones and the simulation --------------------------------------------------------------


class Phone:
    __slots__ = (
        "bytes",
        "checks",
        "device",
        "etag",
        "id",
        "installed",
        "installs",
        "learned",
        "pending",
        "slots",
        "trusted",
    )

    def __init__(
        self, device_id: str, device: Device, etag: str, trusted: int, installed: int
    ) -> None:
        self.id = device_id
        self.device = device
        self.etag = etag
        self.trusted = trusted  # the snapshot version whose metadata it holds
        self.installed = installed
        self.pending: tuple[int, float] | None = None
        self.installs: dict[int, float] = {}  # release -> simulated second installed
        self.learned: dict[int, float] = {}  # release -> first offered
        self.slots: dict[int, float] = {}  # release -> Schedule.install_at when first offered
        self.bytes = [0, 0, 0]  # per phase: before the normal release, normal, urgent
        self.checks = [0, 0, 0]


@dataclass
class PhaseCounters:
    checks: int = 0
    not_modified: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    bytes_by_kind: dict[str, int] = field(default_factory=dict)
    real_started: float = 0.0
    real_seconds: float = 0.0

    def add(self, kind: str, n: int) -> None:
        self.bytes_by_kind[kind] = self.bytes_by_kind.get(kind, 0) + n


class Clock:
    """Simulated seconds from real ones: ``sim = base_sim + (real - base_real) * speed``."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.base_sim = 0.0
        self.base_real = time.monotonic()

    def anchor(self, sim: float) -> None:
        self.base_sim, self.base_real = sim, time.monotonic()

    def sim(self, real: float) -> float:
        return self.base_sim + (real - self.base_real) * self.speed

    def real(self, sim: float) -> float:
        return self.base_real + (sim - self.base_sim) / self.speed


class Fleet:
    def __init__(self, args: argparse.Namespace, repo: Repository, pool: ThreadPoolExecutor):
        self.args = args
        self.repo = repo
        self.pool = pool
        self.schedule = Schedule()
        self.rng = random.Random(args.seed)
        self.clock = Clock(args.speed)
        self.phones: list[Phone] = []
        self.offline = 0
        self.heap: list[tuple[float, int, int]] = []
        self.seq = 0
        self.phase = 0
        self.counters = [PhaseCounters(), PhaseCounters(), PhaseCounters()]
        # (release, cohort) -> online phones of that cohort on the release or above
        self.have: dict[tuple[int, str], int] = {}
        self.cohort_sizes: dict[str, int] = {}
        self.lag: list[float] = []  # real seconds each check went out after its due time
        self.queue: asyncio.Queue[tuple[float, int]] = asyncio.Queue(maxsize=4 * args.connections)

    def make_phones(self, etag: str, trusted: int) -> None:
        for _ in range(self.args.devices):
            device_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            channel = BETA if self.rng.random() < self.args.beta else "stable"
            if self.rng.random() < self.args.offline:
                self.offline += 1  # never checks: out of every denominator
                continue
            device = device_of(device_id, channel=channel)
            phone = Phone(device_id, device, etag, trusted, self.args.start_release["release"])
            self.phones.append(phone)
            self.cohort_sizes[channel] = self.cohort_sizes.get(channel, 0) + 1
            first = self.rng.random() * self.schedule.check_seconds
            self.push(first, len(self.phones) - 1)

    def push(self, at: float, index: int) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, self.seq, index))

    def reached(self, release: int) -> Callable[[], bool]:
        """95% of the online phones of every cohort (so of all of them too) have ``release``:
        stopping at 95% of all would leave the larger cohort just short of its own 95%."""
        need = {c: math.ceil(SHARE * n) for c, n in self.cohort_sizes.items()}
        return lambda: all(self.have.get((release, c), 0) >= n for c, n in need.items())

    def share(self, release: int) -> float:
        got = sum(n for (r, _), n in self.have.items() if r == release)
        return got / len(self.phones) if self.phones else 0.0

    async def worker(self, port: int) -> None:
        conn = Connection(port)
        try:
            while True:
                at, index = await self.queue.get()
                try:
                    await self.check(conn, at, index)
                finally:
                    self.queue.task_done()
        finally:
            conn.close()

    async def check(self, conn: Connection, now: float, index: int) -> None:
        """client.sync.check, scheduled, for one phone at simulated second ``now``."""
        phone = self.phones[index]
        self.lag.append(time.monotonic() - self.clock.real(now))
        self.push(self.schedule.next_check(now, self.rng.random()), index)
        phase, counters = self.phase, self.counters[self.phase]
        try:
            answer = await conn.get(TIMESTAMP_PATH, phone.etag)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            name = type(exc).__name__
            counters.errors[name] = counters.errors.get(name, 0) + 1
            return
        counters.checks += 1
        phone.checks[phase] += 1
        phone.bytes[phase] += answer.wire_bytes
        if answer.status == 304:
            counters.not_modified += 1
            counters.add("timestamp_304", answer.wire_bytes)
            changed, etag = False, phone.etag
        elif answer.status == 200 and answer.etag:
            counters.add("timestamp_200", answer.wire_bytes)
            changed, etag = True, answer.etag
        else:
            counters.errors[str(answer.status)] = counters.errors.get(str(answer.status), 0) + 1
            return
        pending = phone.pending
        if not changed and (pending is None or pending[1] > now):
            return
        version = await self.repo.version(etag)
        # the TUF refresh: a probe for a newer root, timestamp.json, and what is new to it
        counters.add("refresh_root_probe_and_timestamp", version.refresh_bytes)
        charged = version.refresh_bytes
        if phone.trusted != version.snapshot_version:
            counters.add("snapshot_and_targets", version.metadata_bytes)
            charged += version.metadata_bytes
            phone.trusted = version.snapshot_version
        phone.bytes[phase] += charged
        offer = choose_update(version.releases, installed=phone.installed, device=phone.device)
        if offer is None:
            phone.etag, phone.pending = etag, None
            return
        phone.learned.setdefault(offer.version, now)
        if not offer.urgent:
            if pending is None or pending[0] != offer.version:
                pending = (offer.version, self.schedule.install_at(offer, phone.device, now))
                phone.slots.setdefault(offer.version, pending[1])
            if pending[1] > now:
                phone.etag, phone.pending = etag, pending
                return
        phone.slots.setdefault(offer.version, now)
        size = await self.repo.target_bytes(version, offer.target)
        kind = "delta" if offer.target.startswith("delta-") else "full"
        counters.add(f"target_{kind}", size)
        phone.bytes[phase] += size
        for release in range(phone.installed + 1, offer.version + 1):
            key = (release, phone.device.channel)
            self.have[key] = self.have.get(key, 0) + 1
        phone.installed, phone.etag, phone.pending = offer.version, etag, None
        phone.installs[offer.version] = now

    async def run_until(self, limit: float, done: Callable[[], bool]) -> float:
        """Send the checks due before ``limit`` in simulated order, paced by the clock, until
        ``done()``; then wait for every answer. Returns the simulated second it stopped at."""
        last = self.clock.base_sim
        while True:
            if done():
                break
            if not self.heap or self.heap[0][0] >= limit:
                last = limit
                break
            wait = self.clock.real(self.heap[0][0]) - time.monotonic()
            if wait > 0.001:
                await asyncio.sleep(wait)
                continue
            due = self.clock.sim(time.monotonic())
            while self.heap and self.heap[0][0] <= due and self.heap[0][0] < limit:
                at, _, index = heapq.heappop(self.heap)
                await self.queue.put((at, index))
                last = at
                if done():
                    break
        await self.queue.join()
        return last

    async def publish(self, at: float, noisy: int | None) -> dict[str, Any]:
        """Publish through the services (in the Django thread) with the clock stopped."""
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self.pool, publish, self.args.publisher, noisy)
        self.clock.anchor(at)
        return dict(result)


async def simulate(args: argparse.Namespace, port: int, var_dir: Path) -> dict[str, Any]:
    pool = ThreadPoolExecutor(max_workers=1)  # Django and tuf.ngclient: one thread, in turn
    root = (Path(args.repo_dir) / "metadata" / "1.root.json").read_bytes()
    repo = Repository(port, var_dir / "reference-phone", root, pool)
    conn = Connection(port)
    first = await conn.get(TIMESTAMP_PATH)
    conn.close()
    if first.status != 200 or not first.etag:
        raise SystemExit(f"{TIMESTAMP_PATH}: {first.status}, ETag {first.etag}")
    start = await repo.version(first.etag)
    fleet = Fleet(args, repo, pool)
    fleet.make_phones(first.etag, start.snapshot_version)
    workers = [asyncio.ensure_future(fleet.worker(port)) for _ in range(args.connections)]
    real_started, cpu_started = time.monotonic(), time.process_time()
    fleet.clock.anchor(0.0)
    publishes: dict[str, dict[str, Any]] = {}
    ends: dict[str, float] = {}
    try:
        fleet.counters[0].real_started = time.monotonic()
        await fleet.run_until(PUBLISH_AT, lambda: False)
        fleet.counters[0].real_seconds = time.monotonic() - fleet.counters[0].real_started
        at = PUBLISH_AT
        for phase, (kind, limit, noisy) in enumerate(
            (("normal", NORMAL_LIMIT, None), ("urgent", URGENT_LIMIT, 1)), start=1
        ):
            print(f"  publish the {kind} release at simulated {at / 60:.1f} min", file=sys.stderr)
            done = await fleet.publish(at, noisy)
            release = done["release"]
            publishes[kind] = {"at_simulated_seconds": round(at, 1), **done}
            fleet.phase = phase
            counters = fleet.counters[phase]
            counters.real_started = time.monotonic()
            at = await fleet.run_until(at + limit, fleet.reached(release))
            counters.real_seconds = time.monotonic() - counters.real_started
            ends[kind] = at
            print(
                f"  release {release} on {fleet.share(release):.1%} of online phones at "
                f"simulated {at / 60:.1f} min, {counters.real_seconds:.1f} s real",
                file=sys.stderr,
                flush=True,
            )
    finally:
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        pool.shutdown()
    real_seconds = time.monotonic() - real_started
    result = report(fleet, publishes, ends, real_seconds)
    result["simulator_cpu_seconds"] = round(time.process_time() - cpu_started, 1)
    return result


# --- figures --------------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def _minutes_to(times: list[float], population: int, share: float) -> float | None:
    """Simulated minutes until ``share`` of ``population`` had it; None if never."""
    need = math.ceil(share * population)
    if need == 0 or len(times) < need:
        return None
    return round(sorted(times)[need - 1] / 60, 2)


def report(
    fleet: Fleet, publishes: dict[str, dict[str, Any]], ends: dict[str, float], real: float
) -> dict[str, Any]:
    cohorts = {"all": fleet.phones}
    for phone in fleet.phones:
        cohorts.setdefault(phone.device.channel, []).append(phone)
    releases: dict[str, Any] = {}
    for phase, kind in ((1, "normal"), (2, "urgent")):
        release = publishes[kind]["release"]
        start, end = publishes[kind]["at_simulated_seconds"], ends[kind]
        counters = fleet.counters[phase]
        per_cohort: dict[str, Any] = {}
        for name, phones in cohorts.items():
            got = [p.installs[release] - start for p in phones if release in p.installs]
            knew = [p.learned[release] - start for p in phones if release in p.learned]
            slot = [p.slots[release] - start for p in phones if release in p.slots]
            per_cohort[name] = {
                "online_devices": len(phones),
                "installed_at_end": len(got),
                "share_at_end": round(len(got) / len(phones), 4) if phones else None,
                "minutes_to_50": _minutes_to(got, len(phones), 0.5),
                "minutes_to_95": _minutes_to(got, len(phones), SHARE),
                "offered_minutes_to_50": _minutes_to(knew, len(phones), 0.5),
                "offered_minutes_to_95": _minutes_to(knew, len(phones), SHARE),
                "slot_minutes_to_95": _minutes_to(slot, len(phones), SHARE),
            }
        per_phone = [float(p.bytes[phase]) for p in fleet.phones]
        to95 = per_cohort["all"]["minutes_to_95"]
        releases[kind] = {
            "release": release,
            "change": "one signature marked noisy" if kind == "urgent" else "adds signatures",
            "publish": publishes[kind],
            "ended_at_simulated_minutes_after_publish": round((end - start) / 60, 2),
            "cohorts": per_cohort,
            "bytes_per_device": {
                "median": int(statistics.median(per_phone)) if per_phone else 0,
                "p95": int(_percentile(per_phone, 0.95)),
                "max": int(max(per_phone, default=0)),
                "total": int(sum(per_phone)),
                "by_kind_total": counters.bytes_by_kind,
            },
            "checks": counters.checks,
            "not_modified": counters.not_modified,
            "share_304": round(counters.not_modified / counters.checks, 4)
            if counters.checks
            else None,
            "errors": counters.errors,
            "real_seconds": round(counters.real_seconds, 1),
            "real_checks_per_second": round(counters.checks / counters.real_seconds, 1)
            if counters.real_seconds
            else None,
            "goal_minutes_to_95": GOALS_MINUTES[kind],
            "goal_met": to95 is not None and to95 <= GOALS_MINUTES[kind],
        }
    total_checks = sum(c.checks for c in fleet.counters)
    sim_seconds = ends["urgent"]
    lag_sim = [x * fleet.clock.speed for x in fleet.lag]
    return {
        "devices": fleet.args.devices,
        "online": len(fleet.phones),
        "offline": fleet.offline,
        "cohorts": {name: len(p) for name, p in cohorts.items() if name != "all"},
        "schedule": {
            "check_seconds": fleet.schedule.check_seconds,
            "jitter": fleet.schedule.jitter,
            "update_seconds": fleet.schedule.update_seconds,
        },
        "baseline_before_the_normal_release": {
            "checks": fleet.counters[0].checks,
            "not_modified": fleet.counters[0].not_modified,
            "errors": fleet.counters[0].errors,
            "real_seconds": round(fleet.counters[0].real_seconds, 1),
        },
        "releases": releases,
        "repository_versions": fleet.repo.log,
        "simulated_minutes": round(sim_seconds / 60, 1),
        "real_seconds": round(real, 1),
        "speed": fleet.clock.speed,
        "checks": total_checks,
        "real_checks_per_second": round(total_checks / real, 1) if real else None,
        "scheduled_checks_per_second": round(
            len(fleet.phones) / fleet.schedule.check_seconds * fleet.clock.speed, 1
        ),
        "lag": {
            "meaning": "how late each check went out after its paced real time",
            "real_seconds_p50": round(_percentile(fleet.lag, 0.5), 3),
            "real_seconds_p99": round(_percentile(fleet.lag, 0.99), 3),
            "real_seconds_max": round(max(fleet.lag, default=0.0), 3),
            "simulated_seconds_p99": round(_percentile(lag_sim, 0.99), 1),
            "simulated_seconds_max": round(max(lag_sim, default=0.0), 1),
        },
        "kept_up": _percentile(lag_sim, 0.99) <= 10.0,
    }


def _summary(result: dict[str, Any]) -> str:
    lines = [
        f"fleet: {result['online']} online of {result['devices']} phones "
        f"({result['cohorts']}) on release {result['start_release']['release']}, served by "
        f"{result['server']['kind']}, "
        f"speed x{result['speed']:g}, {result['checks']} real checks in "
        f"{result['real_seconds']} s ({result['real_checks_per_second']}/s; "
        f"scheduled {result['scheduled_checks_per_second']}/s), lag p99 "
        f"{result['lag']['simulated_seconds_p99']} simulated s, kept up: {result['kept_up']}"
    ]
    for kind, r in result["releases"].items():
        c = r["cohorts"]
        by = r["bytes_per_device"]
        per = ", ".join(
            f"{n} {c[n]['minutes_to_50']}/{c[n]['minutes_to_95']}" for n in c if n != "all"
        )
        lines.append(
            f"{kind} release {r['release']} ({r['change']}): 50% in "
            f"{c['all']['minutes_to_50']} min, 95% in {c['all']['minutes_to_95']} min "
            f"(goal {r['goal_minutes_to_95']:g}: "
            f"{'met' if r['goal_met'] else 'NOT met'}; per cohort 50/95: {per}); bytes/phone "
            f"median {by['median']} p95 {by['p95']} total {by['total']}; {r['checks']} checks, "
            f"{r['share_304']:.1%} 304, errors {r['errors'] or 0}; {r['real_seconds']} s real"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--speed", type=float, default=30.0, help="simulated s per real s")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--offline", type=float, default=0.10, help="share that never checks")
    parser.add_argument("--beta", type=float, default=0.05, help="share on the beta channel")
    parser.add_argument("--signatures", type=int, default=400, help="in release 1")
    parser.add_argument("--new-signatures", type=int, default=50, help="added by release 2")
    parser.add_argument(
        "--history",
        type=int,
        default=0,
        help="releases published after release 1 before phones start (targets.json grows "
        "with them, up to RELEASE_DELTA_RETENTION releases listed)",
    )
    parser.add_argument("--server", choices=("auto", "nginx", "gunicorn"), default="auto")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--var-dir", type=Path, default=None, help="default: a temp folder")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--note", default="", help="free text kept in the JSON (e.g. commit)")
    args = parser.parse_args(argv)
    temp = args.var_dir is None
    var_dir = (args.var_dir or Path(tempfile.mkdtemp(prefix="bench-fleet-"))).resolve()
    started = time.monotonic()
    load_at_start = round(os.getloadavg()[0], 2)
    print(f"  set-up in {var_dir}", file=sys.stderr, flush=True)
    made = setup(var_dir, args.signatures, args.new_signatures, args.history)
    args.start_release = made["start_release"]
    args.publisher, args.repo_dir = made["publisher"], made["repo_dir"]
    server = start_server(args.server, var_dir, Path(made["repo_dir"]))
    print(f"  serving /updates/ with {server.kind} on port {server.port}", file=sys.stderr)
    try:
        result = asyncio.run(simulate(args, server.port, var_dir))
    finally:
        server.stop()
    result = {
        "command": "python bench/bench_fleet.py " + " ".join(argv),
        "note": args.note,
        "server": {"kind": server.kind, "how": server.description},
        "load_average_1min_at_start": load_at_start,
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "release_1": made["release_1"],
        "history": f"{args.history} releases after release 1, each adding "
        f"{HISTORY_SIGNATURES} signatures, before the phones start",
        "start_release": made["start_release"],
        "tuf_verification": "tuf.ngclient.Updater.refresh() once per repository version; "
        "target files checked against their signed length and SHA-256 once each",
        "setup_and_total_seconds": round(time.monotonic() - started, 1),
        **result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(_summary(result))
    print(f"wrote {args.out}")
    if temp:
        shutil.rmtree(var_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
