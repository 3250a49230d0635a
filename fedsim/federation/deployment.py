"""Flower's deployment engine: a real SuperLink and one SuperNode per partner, started on this machine.

:class:`LocalDeployment` is generic (any ServerApp/ClientApp pair, any node configs): it writes the
CLI connection into its own ``FLWR_HOME``, starts ``flower-superlink --insecure`` on a free port and one
``flower-supernode`` per partner, each with only its own node config, then ``flwr run``s an app
directory (:func:`write_app_dir`) and stops every process it started (by its own process group).
:func:`run_app` is the whole launch for any :class:`FlowerApp` (horizontal and split learning use it).

**Across machines** — the same apps, the same commands, different hosts (use TLS instead of
``--insecure`` outside a test bench)::

    # coordinator
    flower-superlink --insecure --host 0.0.0.0 --port 9093   # reachable from the partners; TLS outside a test bench
    # coordinator, per partner (the world generated with a secret): its tables and the reports it received
    python -m fedsim.federation.deployment export-partner --world <world dir> --partner bank_1 --out /data/bank_1
    # each partner, on its own machine, with only its own data (the folder above, shipped to it)
    flower-supernode --insecure --superlink <coordinator>:9093 --port 9094 \\
        --node-config 'partner="bank_1" world-dir="/data/bank_1"'
    # coordinator: an app directory with every setting of the run, privacy included
    #   (fedsim.federation.horizontal.write_app from the run's context and settings)
    flwr run app/ <connection> --stream        # <connection>: address + insecure in $FLWR_HOME/config.toml

``python -m fedsim.federation.deployment local --partner bank_1=/data/bank_1 --partner bank_2=/data/bank_2``
starts the SuperLink and SuperNodes on this machine and prints the ``flwr run`` command (Ctrl-C stops them).
Each partner's scores stay in ``<out-dir>/<partner>/`` on its own machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fedsim.errors import FedsimError
from fedsim.federation.engine import OFFLINE_ENV, apply_offline_env

CONNECTION = "fedsim-local"
Value = str | int | float | bool


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml_value(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # TOML basic string: JSON escapes are valid TOML escapes


def format_node_config(config: Mapping[str, Value]) -> str:
    """``{"partner": "bank_1", "world-dir": "/d"}`` → ``partner="bank_1" world-dir="/d"`` (flower-supernode)."""
    return " ".join(f"{k}={_toml_value(v)}" for k, v in config.items())


@dataclass(frozen=True)
class FlowerApp:
    """A ServerApp/ClientApp pair ``flwr run`` can load: project name and ``"module:attribute"`` components."""

    name: str
    components: Mapping[str, str]
    publisher: str = "fedsim"


def write_app_dir(dest: Path, *, app: FlowerApp, config: Mapping[str, Value]) -> Path:
    """A Flower app directory: ``pyproject.toml`` naming the app's ServerApp/ClientApp and the run config.

    The apps themselves are imported from the installed fedsim package on every machine.
    """
    name, components, publisher = app.name, app.components, app.publisher
    dest.mkdir(parents=True, exist_ok=True)
    lines = [
        "[build-system]",
        'requires = ["hatchling"]',
        'build-backend = "hatchling.build"',
        "",
        "[project]",
        f"name = {_toml_value(name)}",
        'version = "1.0.0"',
        "dependencies = []",
        "",
        "[tool.flwr.app]",
        f"publisher = {_toml_value(publisher)}",
        "",
        "[tool.flwr.app.components]",
    ]
    lines += [f"{k} = {_toml_value(v)}" for k, v in components.items()]
    lines += ["", "[tool.flwr.app.config]"] + [f"{k} = {_toml_value(v)}" for k, v in config.items()]
    (dest / "pyproject.toml").write_text("\n".join(lines) + "\n")
    return dest


def _bin(name: str) -> str:
    """A Flower executable next to this interpreter (the venv), else from PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def _wait_port(port: int, *, timeout_s: float, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise FedsimError(f"flower-superlink exited with code {process.returncode}; log {log}:\n{_tail(log)}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise FedsimError(f"flower-superlink did not listen on 127.0.0.1:{port} within {timeout_s:.0f} s; log {log}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class LocalDeployment:
    """A SuperLink + one SuperNode per entry of ``node_configs`` on localhost; a context manager.

    node_configs: label (partner name) → that SuperNode's node config (only what that partner may know).
    work_dir: FLWR_HOME, logs. Processes are started in their own process groups and stopped by id.
    """

    node_configs: Mapping[str, Mapping[str, Value]]
    work_dir: Path
    startup_timeout_s: float = 60.0
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    port: int = 0

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(OFFLINE_ENV)
        env["FLWR_HOME"] = str(self.work_dir / "flwr-home")
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        return env

    def __enter__(self) -> LocalDeployment:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        apply_offline_env()
        home = self.work_dir / "flwr-home"
        home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        (home / "config.toml").write_text(
            f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
            f'address = "127.0.0.1:{self.port}"\ninsecure = true\n'
        )
        try:
            link_log = self.work_dir / "superlink.log"
            self._spawn(
                "superlink",
                [
                    _bin("flower-superlink"),
                    "--insecure",
                    "--port",
                    str(self.port),
                    "--disable-runtime-dependency-installation",
                ],
                link_log,
            )
            _wait_port(self.port, timeout_s=self.startup_timeout_s, process=self.processes["superlink"], log=link_log)
            for label, config in self.node_configs.items():
                self._spawn(
                    f"supernode-{label}",
                    [
                        _bin("flower-supernode"),
                        "--insecure",
                        "--superlink",
                        f"127.0.0.1:{self.port}",
                        "--port",
                        str(free_port()),
                        "--node-config",
                        format_node_config(config),
                    ],
                    self.work_dir / f"supernode-{label}.log",
                )
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name: str, cmd: list[str], log: Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as fh:
            self.processes[name] = subprocess.Popen(
                cmd, stdout=fh, stderr=subprocess.STDOUT, env=self.env(), cwd=self.work_dir, start_new_session=True
            )

    def run(self, app_dir: Path, *, timeout_s: float = 1800.0) -> str:
        """``flwr run <app_dir> --stream`` against this SuperLink; returns its output. Raises on failure."""
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise FedsimError(
                    f"{name} exited with code {proc.returncode} before the run; log:\n"
                    f"{_tail(self.work_dir / (name + '.log'))}"
                )
        log = self.work_dir / "flwr-run.log"
        cmd = [_bin("flwr"), "run", str(app_dir), CONNECTION, "--stream"]
        try:
            done = subprocess.run(
                cmd, env=self.env(), cwd=self.work_dir, capture_output=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired as err:
            raise FedsimError(f"flwr run did not finish within {timeout_s:.0f} s") from err
        text = (done.stdout or b"").decode(errors="replace") + (done.stderr or b"").decode(errors="replace")
        log.write_text(text)
        if done.returncode != 0:
            raise FedsimError(f"flwr run exited with code {done.returncode}; log {log}:\n{_tail(log)}")
        return text

    def stop(self) -> None:
        """Terminate every process this deployment started (its own process groups), newest first."""
        for proc in reversed(list(self.processes.values())):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        deadline = time.monotonic() + 15
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.processes.clear()


def run_app(
    app: FlowerApp,
    *,
    config: Mapping[str, Value],
    node_configs: Mapping[str, Mapping[str, Value]],
    work: Path,
    timeout_s: float,
) -> None:
    """Write ``app``'s directory with run config ``config``, start a SuperLink and one SuperNode per entry of
    ``node_configs`` on this machine, ``flwr run`` the app and stop every process. Raises on failure."""
    app_dir = write_app_dir(work / "app", app=app, config=config)
    with LocalDeployment(node_configs, work / "flower") as deployment:
        deployment.run(app_dir, timeout_s=timeout_s)


# --------------------------------------------------------------------------------------------------
# Command line: the recipe for one machine or many
# --------------------------------------------------------------------------------------------------
def _cmd_export(args: argparse.Namespace) -> None:
    from fedsim.federation.partner_data import TRUTH_FOR_LABELS, export_partner_world
    from synthetic.world import WorldError, read_world, to_pandas

    try:
        world = read_world(args.world, partners=[args.partner])
        truth = {k: to_pandas(t) for k, t in world.truth.items() if k in TRUTH_FOR_LABELS}
        print(export_partner_world(world, truth, args.partner, Path(args.out)))
    except (FedsimError, WorldError) as err:  # one line naming the problem, not a traceback
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def _cmd_local(args: argparse.Namespace) -> None:
    nodes = {}
    for item in args.partner:
        name, _, path = item.partition("=")
        nodes[name] = {"partner": name, "world-dir": str(Path(path).resolve())}
    deployment = LocalDeployment(nodes, Path(args.work).resolve())
    with deployment:
        print(f"SuperLink on 127.0.0.1:{deployment.port}; SuperNodes: {', '.join(nodes)}")
        print(f"run:  FLWR_HOME={deployment.work_dir / 'flwr-home'} flwr run <app dir> {CONNECTION} --stream")
        try:
            while all(p.poll() is None for p in deployment.processes.values()):
                time.sleep(1)
        except KeyboardInterrupt:
            pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fedsim.federation.deployment", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "export-partner", help="write a partner directory (one partner's tables + the reports it received)"
    )
    p.add_argument("--world", required=True)
    p.add_argument("--partner", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=_cmd_export)
    p = sub.add_parser("local", help="start a SuperLink and one SuperNode per --partner NAME=DIR on localhost")
    p.add_argument("--partner", action="append", required=True)
    p.add_argument("--work", default="fl-local")
    p.set_defaults(fn=_cmd_local)
    args = parser.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main()
