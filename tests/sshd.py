"""A real OpenSSH server on 127.0.0.1 for tests: Debian's `sshd` in the foreground, with throwaway keys.

The server and the client share this machine and this user (DVC's SSH remote is a path on the same disk), but every
byte goes through sshd's SFTP subsystem and public-key authentication as it would to a team's server.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"


def ensure_sshd() -> str:
    """The sshd binary, installed with apt-get when missing (CI runs as root on Debian); else the test skips."""
    if Path(SSHD).is_file():
        return SSHD
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("openssh-server is not installed and cannot be installed here (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "openssh-server"]
    # Try without `apt-get update` first: a machine with a fresh package index installs in seconds.
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        proc = subprocess.run(install, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"apt-get could not install openssh-server: {proc.stderr.strip()[-300:]}")
    return SSHD


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> str:
    """A new ed25519 key pair without passphrase; returns the public key line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


@dataclass
class Server:
    port: int
    user: str
    keyfile: Path  # the client's private key
    home: Path  # a HOME for clients: .ssh/known_hosts pins this server's host key
    proc: subprocess.Popen
    log: Path

    def url(self, path: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start(root: Path) -> Server:
    """Start `sshd -D` on a free loopback port with its own host key, config and authorized_keys under `root`."""
    sshd = ensure_sshd()
    root.mkdir(parents=True, exist_ok=True)
    user = pwd.getpwuid(os.getuid()).pw_name
    host_pub = keygen(root / "host_ed25519")
    (root / "authorized_keys").write_text(keygen(root / "client_ed25519") + "\n")
    port = free_port()
    config = root / "sshd_config"
    config.write_text(
        f"Port {port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {root / 'host_ed25519'}\n"
        f"PidFile {root / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\n"
        # The key files live in pytest's tmp dir, whose modes sshd's StrictModes would reject; PAM is for
        # system logins and wants a full system set-up this throwaway server does not need.
        "StrictModes no\n"
        "UsePAM no\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        # DVC's SSH remote talks SFTP; the in-process server needs no sftp-server binary at a distro path.
        "Subsystem sftp internal-sftp\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir, normally made by systemd
    check = subprocess.run([sshd, "-t", "-f", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, f"sshd rejected its config: {check.stderr}"

    home = root / "home"
    (home / ".ssh").mkdir(parents=True)
    # What a teammate's machine would hold; known_hosts spells a non-22 port as [host]:port. OpenSSH's ssh accepts
    # this server with it and refuses another key, but DVC's SSH remote never reads it
    # (test_sharing.py::test_dvc_ssh_does_not_check_the_host_key): it is no gate here.
    (home / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{port} {' '.join(host_pub.split()[:2])}\n")

    log = root / "sshd.log"
    # -D: stay in the foreground so the test owns the process; -e: log to stderr (the file) instead of syslog.
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=log.open("w"))
    server = Server(port, user, root / "client_ed25519", home, proc, log)
    deadline = time.monotonic() + 15
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"sshd exited {proc.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(64).startswith(b"SSH-2.0-"):
                    return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise AssertionError(f"sshd did not answer on 127.0.0.1:{port}:\n{log.read_text()}")
        time.sleep(0.1)
