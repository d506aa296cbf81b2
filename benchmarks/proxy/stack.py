"""Start the sandbox PSP and `paymux serve` as subprocesses on loopback, each in its own temp dir.

The gateway's config is the embedded default (python/paymux/default.toml, demo merchant and
key included) with the ports, the SQLite file and the vault key file moved into the temp dir.
Used by benchmarks/bench_gateway.py, benchmarks/bench_proxy.py and loadtests/run.py.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

PYTHON = sys.executable
ROOT = Path(__file__).resolve().parents[2]  # the repository
DEMO_KEY_PATTERN = re.compile(r'^api_key = "(sk_test_[^"]+)"', re.MULTILINE)
SANDBOX_STRIPE_KEY = "sk_test_paymux_sandbox"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cmd: list[str], cpus: str | None) -> list[str]:
    """`cmd` run under `taskset -c cpus` (no pinning when cpus is None or taskset is missing)."""
    if cpus is None or not _has("taskset"):
        return cmd
    return ["taskset", "-c", cpus, *cmd]


def _has(tool: str) -> bool:
    return any(
        os.access(os.path.join(d, tool), os.X_OK) for d in os.environ.get("PATH", "").split(":")
    )


def wait_http(url: str, timeout_s: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1.0):
                return
        except urllib.error.HTTPError:
            return  # it answers: up
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up in {timeout_s} s")


def vm_rss_kb(pid: int) -> int:
    """VmRSS of one process, in kB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), in seconds (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its direct children (the gateway's workers)."""
    return cpu_seconds(pid) + sum(cpu_seconds(c) for c in children(pid))


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def tree_rss_kb(pid: int) -> int:
    """RSS of a process and its direct children (the gateway's workers when --workers > 1)."""
    return vm_rss_kb(pid) + sum(vm_rss_kb(c) for c in children(pid))


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def spawn(
    name: str,
    cmd: list[str],
    workdir: Path,
    cpus: str | None = None,
    env: dict[str, str] | None = None,
) -> Proc:
    log_path = workdir / f"{name}.log"
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(
            pinned(cmd, cpus),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            env={**os.environ, **(env or {})},
        )
    return Proc(name, popen, log_path)


def demo_key() -> str:
    match = DEMO_KEY_PATTERN.search(_default_toml())
    assert match, "default.toml has no demo api_key"
    return match.group(1)


def _default_toml(tree: Path | None = None) -> str:
    if tree is not None:
        return (tree / "paymux" / "default.toml").read_text()
    return files("paymux").joinpath("default.toml").read_text()


STRIPE_FIRST = '[routing]\ndefault_order = ["stripe", "adyen", "checkout"]\n'


def _replace_routing(text: str, routing: str) -> str:
    """`text` with its [routing] tables (and their sub-tables) replaced by `routing`."""
    out: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        header = line.strip()
        if header.startswith("["):
            name = header.strip("[]").strip()
            skipping = name == "routing" or name.startswith("routing.")
        if not skipping:
            out.append(line)
    return "".join(out).rstrip("\n") + "\n\n" + routing


def gateway_config_text(
    workdir: Path,
    port: int,
    sandbox_port: int,
    workers: int = 1,
    log_level: str = "info",
    tree: Path | None = None,
    stripe_first: bool = False,
) -> str:
    """default.toml (of the source `tree`, else the installed one) with this run's ports, files
    and worker count; `stripe_first` replaces its routing with priority stripe, adyen, checkout,
    so a gateway payment and a direct Stripe call do the same PSP work."""
    text = _default_toml(tree)
    if stripe_first:
        text = _replace_routing(text, STRIPE_FIRST)
    text = text.replace("127.0.0.1:8090/", f"127.0.0.1:{sandbox_port}/")
    text = re.sub(r"^port = \d+", f"port = {port}", text, flags=re.MULTILINE)
    text = re.sub(r"^workers = \d+", f"workers = {workers}", text, flags=re.MULTILINE)
    text = re.sub(r'^log_level = "\w+"', f'log_level = "{log_level}"', text, flags=re.MULTILINE)
    text = text.replace('".paymux/paymux.db"', f'"{workdir / "paymux.db"}"')
    text = text.replace('".paymux/keys.json"', f'"{workdir / "keys.json"}"')
    return text


@dataclass
class Stack:
    """A sandbox, and optionally a gateway in front of it, in one temp dir."""

    workdir: Path
    sandbox_port: int
    sandbox: Proc
    gateway_port: int | None = None
    gateway: Proc | None = None
    extra: list[Proc] = field(default_factory=list)

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def stop(self) -> None:
        for proc in [*self.extra, *([self.gateway] if self.gateway else []), self.sandbox]:
            proc.stop()


def start_sandbox(workdir: Path, cpus: str | None = None, seed: int = 1) -> tuple[Proc, int]:
    port = free_port()
    proc = spawn(
        "sandbox",
        [PYTHON, "-m", "paymux.cli", "sandbox", "--port", str(port), "--seed", str(seed)],
        workdir,
        cpus,
    )
    wait_http(f"http://127.0.0.1:{port}/_sandbox/ledger", proc=proc.popen)
    return proc, port


def start_gateway(
    workdir: Path,
    sandbox_port: int,
    cpus: str | None = None,
    workers: int = 1,
    log_level: str = "info",
    name: str = "gateway",
    tree: Path | None = None,
    stripe_first: bool = False,
) -> tuple[Proc, int]:
    """`paymux serve` on a free port; `tree` runs it from another source tree (a python/ dir)."""
    port = free_port()
    config = workdir / f"{name}.toml"
    config.write_text(
        gateway_config_text(workdir, port, sandbox_port, workers, log_level, tree, stripe_first)
    )
    env = {"PYTHONPATH": str(tree)} if tree is not None else None
    proc = spawn(
        name, [PYTHON, "-m", "paymux.cli", "serve", "--config", str(config)], workdir, cpus, env
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc=proc.popen)
    except RuntimeError as exc:
        proc.stop()
        tail = proc.log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{exc}; its log ends with:\n{tail}") from None
    if workers > 1:  # every worker binds its own socket: wait until all answer
        deadline = time.monotonic() + 20
        while len(children(proc.pid)) < workers and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
    return proc, port


def start_stack(
    workdir: Path,
    gateway: bool = True,
    sandbox_cpus: str | None = None,
    gateway_cpus: str | None = None,
    workers: int = 1,
    log_level: str = "info",
) -> Stack:
    sandbox, sandbox_port = start_sandbox(workdir, sandbox_cpus)
    stack = Stack(workdir, sandbox_port, sandbox)
    if gateway:
        try:
            stack.gateway, stack.gateway_port = start_gateway(
                workdir, sandbox_port, gateway_cpus, workers, log_level
            )
        except BaseException:
            stack.stop()
            raise
    return stack


def export_tree(ref: str, dest: Path) -> Path:
    """The `python/` tree of git `ref`, with the working tree's compiled extension beside it."""
    root = ROOT
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", ref, "python"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    for so in (root / "python" / "paymux").glob("_core*.so"):
        shutil.copy2(so, dest / "python" / "paymux" / so.name)
    return dest / "python"
