"""A throw-away one-node SLURM cluster on this machine, for integration tests.

Everything lives in one temporary folder: a munge key and socket, ``slurm.conf``, ``gres.conf``,
``cgroup.conf``, two fake GPU device nodes, the state/spool folders, logs and pid files. Nothing is
installed and no system file is touched; the daemons listen on free ports of 127.0.0.1 and are stopped by
the pids in their pid files. It needs root (slurmd runs jobs as their submitting user and creates the
device nodes with ``mknod``) and Debian's ``slurm-wlm`` and ``munge`` packages::

    apt-get install -y slurm-wlm munge

By hand (``start`` prints the ``export SLURM_CONF=... PATH=...`` line for sbatch/squeue/sinfo)::

    python tests/slurm_cluster.py start /tmp/blsl     # ... then: python tests/slurm_cluster.py stop /tmp/blsl

In tests::

    with SlurmCluster() as cluster:
        subprocess.run(["sbatch", "--wrap", "hostname"], env=cluster.env)
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

#: Programs the cluster needs on PATH (or in /usr/sbin).
REQUIRED_PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "sinfo", "scontrol", "scancel")
#: Seconds SLURM keeps a finished job visible to squeue. The Snakemake SLURM executor queries job states
#: with squeue when there is no accounting database (``slurm-status-command: squeue``), which needs
#: MinJobAge >= 3x its first status delay (default 40 s; the plugin checks for >= 120 s).
MIN_JOB_AGE = 300
#: Number of fake GPUs of the node.
N_GPUS = 2


def _which(name: str) -> str | None:
    """Find a program on PATH or in the sbin folders (which are not on a non-login root PATH everywhere)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")


def missing_requirements() -> str | None:
    """Why this machine cannot run the cluster, or None when it can.

    Returns:
        A human-readable skip reason naming what is missing and how to get it, or None.
    """
    if os.name != "posix" or not hasattr(os, "geteuid"):
        return "SLURM test cluster needs Linux"
    if os.geteuid() != 0:
        return "SLURM test cluster needs root (slurmd runs jobs as their user and mknod creates fake GPUs)"
    missing = [p for p in REQUIRED_PROGRAMS if _which(p) is None]
    if missing:
        return f"SLURM/munge programs not found: {', '.join(missing)} (apt-get install -y slurm-wlm munge)"
    return None


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SlurmCluster:
    """A one-node SLURM cluster (slurmctld + slurmd + munged) on localhost with two fake GPUs.

    Args:
        root: Folder for every file of the cluster (created; removed by :meth:`stop` only when this class
            created it). Keep it short: munge's socket path must fit a Unix socket name (108 bytes).
        cpus: CPUs the node advertises (may exceed the real core count: the node's configured values
            override what slurmd detects, so tests can run several one-CPU jobs at once).
        real_memory_mb: Memory the node advertises, in MB (jobs asking for more are rejected).
        partitions: Partition names, all over the one node; the first is the default. The default names
            are those of profiles/slurm (``cpu`` for CPU jobs, ``gpu`` for GPU jobs).
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        cpus: int = 8,
        real_memory_mb: int = 64000,
        partitions: tuple[str, ...] = ("cpu", "gpu"),
    ) -> None:
        self._own_root = root is None
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="blsl-", dir="/tmp"))
        self.cpus = cpus
        self.real_memory_mb = real_memory_mb
        self.partitions = tuple(partitions)
        self.node = socket.gethostname().split(".")[0]
        self.conf = self.root / "etc" / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.sock"
        self.pid_files = {
            "slurmd": self.root / "run" / "slurmd.pid",
            "slurmctld": self.root / "run" / "slurmctld.pid",
            "munged": self.root / "run" / "munged.pid",
        }

    # -- files -------------------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """The environment for SLURM client commands (sbatch, squeue, ...).

        ``SLURM_CONF`` points to this cluster's slurm.conf, and ``<root>/bin`` comes first on ``PATH``: it
        holds an ``srun`` wrapper that sets ``SLURM_CONF`` again. The Snakemake job step inside each batch
        job drops every ``SLURM_*`` variable (SLURM_CONF included) before it calls ``srun``, which then
        only finds a config at the default /etc/slurm/slurm.conf; a real cluster has one there, this
        test cluster deliberately does not touch /etc.
        """
        path = f"{self.root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
        return dict(os.environ, SLURM_CONF=str(self.conf), PATH=path)

    def gpu_devices(self) -> list[Path]:
        """The fake GPU device nodes named in gres.conf."""
        return [self.root / "dev" / f"nvidia{i}" for i in range(N_GPUS)]

    def write_config(self) -> None:
        """Write the munge key and slurm.conf, gres.conf and cgroup.conf, and create the fake GPUs."""
        for sub in ("bin", "etc", "munge", "run", "log", "state", "spool"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "munge").chmod(0o700)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)

        srun = _which("srun")
        if srun is None:
            raise RuntimeError("srun not found (apt-get install -y slurm-wlm)")
        wrapper = self.root / "bin" / "srun"
        wrapper.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}" exec "{srun}" "$@"\n')
        wrapper.chmod(0o755)

        devdir = self.root / "dev"
        devdir.mkdir(exist_ok=True)
        for i, dev in enumerate(self.gpu_devices()):
            if not dev.exists():
                # Character devices with the NVIDIA major number (195): slurmd's gpu plugin only needs
                # device files it can stat; nothing ever opens them.
                os.mknod(dev, 0o666 | 0o020000, os.makedev(195, i))

        ctld_port, d_port = _free_port(), _free_port()
        r = self.root
        slurm_conf = f"""\
# One-node test cluster written by tests/slurm_cluster.py.
ClusterName=blobloss-test
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={self.pid_files['slurmctld']}
SlurmdPidFile={self.pid_files['slurmd']}
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups: processes tracked through /proc, no task confinement
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# cores and GPUs are consumable, so jobs share the node and each GPU job gets its own GPU
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
# use the CPU count and memory written here, not what slurmd detects (so tests can run several jobs)
SlurmdParameters=config_overrides
ReturnToService=2
# no accounting database: finished jobs stay visible to squeue for MinJobAge seconds
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge={MIN_JOB_AGE}
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
MpiDefault=none
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.real_memory_mb} Gres=gpu:{N_GPUS} State=UNKNOWN
"""
        for i, name in enumerate(self.partitions):
            default = "YES" if i == 0 else "NO"
            slurm_conf += f"PartitionName={name} Nodes={self.node} Default={default} MaxTime=INFINITE State=UP\n"
        self.conf.write_text(slurm_conf)
        gres = "".join(f"NodeName={self.node} Name=gpu File={dev}\n" for dev in self.gpu_devices())
        (self.root / "etc" / "gres.conf").write_text(gres)
        # Read by slurmd at start; no cgroup plugin is used (proctrack/linuxproc, task/none).
        (self.root / "etc" / "cgroup.conf").write_text("ConstrainDevices=no\nConstrainCores=no\nConstrainRAMSpace=no\n")

    # -- daemons -----------------------------------------------------------------------------------

    def _run_daemon(self, args: list[str]) -> None:
        """Start one daemon (it forks into the background); raise RuntimeError with the logs if it fails."""
        proc = subprocess.run(args, capture_output=True, text=True, env=self.env, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n{self.logs()}"
            )

    def start(self, timeout: float = 60.0) -> None:
        """Write the configuration, start munged, slurmctld and slurmd, and wait until the node is idle.

        Args:
            timeout: Seconds to wait for the node to become idle.

        Raises:
            RuntimeError: When a daemon fails to start or the node does not become idle; the message holds
                the daemons' logs.
        """
        self.write_config()
        r = self.root
        self._run_daemon([
            _which("munged") or "munged", "--force",
            f"--key-file={r}/munge/munge.key", f"--socket={self.munge_socket}",
            f"--pid-file={self.pid_files['munged']}", f"--log-file={r}/log/munged.log",
            f"--seed-file={r}/munge/munged.seed",
        ])
        self._wait_for(lambda: self.munge_socket.exists(), 20, "munged did not create its socket")
        self._run_daemon([_which("slurmctld") or "slurmctld", "-f", str(self.conf)])
        self._run_daemon([_which("slurmd") or "slurmd", "-f", str(self.conf)])
        self._wait_for(self._node_idle, timeout, f"node {self.node} did not become idle")

    def _node_idle(self) -> bool:
        proc = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, env=self.env, timeout=20
        )
        states = {line.strip().rstrip("*") for line in proc.stdout.splitlines() if line.strip()}
        return proc.returncode == 0 and states == {"idle"}

    def _wait_for(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``check`` until it is true; raise RuntimeError with the daemon logs after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} within {timeout:g} s\n{self.logs()}")
            time.sleep(0.5)

    def logs(self, tail: int = 30) -> str:
        """The last lines of every daemon log (for error messages)."""
        parts = []
        for log in sorted((self.root / "log").glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-tail:]
            parts.append(f"--- {log.name} ---\n" + "\n".join(lines))
        return "\n".join(parts)

    def _pid(self, name: str) -> int | None:
        try:
            return int(self.pid_files[name].read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self, remove: bool | None = None) -> None:
        """Cancel every job, stop the daemons by the pids in their pid files, and remove the folder.

        Args:
            remove: Remove the cluster's folder (default: when this object created it).
        """
        if self.conf.exists():
            subprocess.run(["scancel", "--full", "-u", "root"], capture_output=True, env=self.env, timeout=20,
                           check=False)
        for name in ("slurmd", "slurmctld", "munged"):
            pid = self._pid(name)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.2)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if remove if remove is not None else self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> SlurmCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """``start DIR`` / ``stop DIR`` a test cluster by hand."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("root", help="folder of the cluster's files (short path, e.g. /tmp/blsl)")
    args = parser.parse_args(argv)
    reason = missing_requirements()
    if reason:
        print(reason, file=sys.stderr)
        return 1
    cluster = SlurmCluster(args.root)
    if args.action == "start":
        cluster.start()
        print(f"export SLURM_CONF={cluster.conf} PATH={cluster.root / 'bin'}:$PATH")
    else:
        cluster.stop(remove=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
