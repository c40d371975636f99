"""A team sharing one DVC cache: teammate A builds and pushes, teammate B (a fresh clone) pulls instead of rebuilding.

The remote is a real OpenSSH server on 127.0.0.1 (tests/sshd.py), the git server a bare repository on disk. One
pipeline run in A serves every test here; each test makes its own fresh clone.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tests import sshd
from tests.conftest import merge, slow_fixture
from tests.dvcrepo import FAST, at, copy_repo, copy_run, ran_stages, sh


def digests(path: Path) -> dict[str, str]:
    """sha256 of every file under `path`, by relative path: equal dicts mean byte-identical trees."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = sshd.start(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@slow_fixture(scope="module")
def team(tmp_path_factory, server, fast_run) -> SimpleNamespace:
    """A: the shared run, copied, with the SSH remote as its committed default, pushed to git and DVC."""
    root = tmp_path_factory.mktemp("team")
    # HOME: a home of our own, so the developer's ~/.ssh/config or keys cannot change what the client does.
    env = {"HOME": str(server.home)}
    origin = root / "origin.git"
    sh(["git", "init", "-q", "--bare", str(origin)], root, env=env)
    a = copy_run(fast_run, root / "a")

    # What the team commits: where the remote is. What each teammate keeps in .dvc/config.local: the key.
    sh(["dvc", "remote", "add", "-d", "team", server.url(root / "dvc-store")], a, env=env)
    sh(["dvc", "remote", "modify", "--local", "team", "keyfile", str(server.keyfile)], a, env=env)
    sh(["git", "add", ".dvc/config"], a, env=env)
    sh(["git", "commit", "-qm", "DVC remote: team"], a, env=env)
    branch = sh(["git", "rev-parse", "--abbrev-ref", "HEAD"], a).stdout.strip()
    sh(["git", "remote", "add", "origin", str(origin)], a, env=env)
    sh(["git", "push", "-q", "origin", branch], a, env=env)
    sh(["dvc", "push"], a, env=env)
    return SimpleNamespace(
        root=root,
        a=a,
        origin=origin,
        branch=branch,
        env=env,
        server=server,
        adapter=digests(a / "models/heating"),
        base=digests(a / "models/base"),
    )


@pytest.fixture(scope="module")
def sweep(team) -> SimpleNamespace:
    """A runs one experiment (lora.r=64) and shares it: the experiment through git, its run through the run cache."""
    a, env = team.a, team.env
    out = sh(["dvc", "exp", "run", "-n", "r64", "-S", "lora.r=64"], a, env=env).stdout
    assert ran_stages(out) == at("heating", "train", "evaluate", "report", "interference") | {"compare"}, out
    adapter = digests(a / "models/heating")
    assert adapter != team.adapter
    assert json.loads((a / "models/heating/adapter_config.json").read_text())["r"] == 64
    # `exp push` sends the experiment's git ref and, to the default DVC remote, its cached outputs; the run cache
    # (stage + deps + params -> outputs) only goes with --run-cache.
    sh(["dvc", "exp", "push", "origin", "r64"], a, env=env)
    sh(["dvc", "push", "--run-cache"], a, env=env)
    return SimpleNamespace(name="r64", adapter=adapter)


def clone(team, name: str) -> Path:
    """B: a new teammate's checkout: the git repo from the team's server, their own key in .dvc/config.local."""
    dst = team.root / name
    sh(["git", "clone", "-q", "-b", team.branch, str(team.origin), str(dst)], team.root, env=team.env)
    sh(["dvc", "remote", "modify", "--local", "team", "keyfile", str(team.server.keyfile)], dst, env=team.env)
    return dst


def test_teammate_pulls_over_ssh_and_repro_runs_nothing(team):
    b = clone(team, "b")
    assert not (b / "models/heating").exists()
    sh(["dvc", "pull"], b, env=team.env)
    out = sh(["dvc", "repro"], b, env=team.env).stdout
    assert ran_stages(out) == set(), out
    assert "Data and pipelines are up to date" in out
    assert digests(b / "models/heating") == team.adapter
    assert digests(b / "models/base") == team.base
    # The bytes came through sshd, authenticated by the key in config.local.
    assert "Accepted publickey for" in team.server.log.read_text()


def test_the_key_stays_out_of_git(team):
    b = clone(team, "b-config")
    committed = sh(["git", "show", "HEAD:.dvc/config"], b).stdout
    assert "ssh://" in committed and "keyfile" not in committed
    local = (b / ".dvc/config.local").read_text()
    assert str(team.server.keyfile) in local
    # DVC's own .dvc/.gitignore lists config.local: `git add -A` can never pick it up.
    assert sh(["git", "check-ignore", "-q", ".dvc/config.local"], b, check=False).returncode == 0
    assert sh(["git", "status", "--porcelain"], b).stdout == ""


def test_dvc_ssh_does_not_check_the_host_key(team, tmp_path):
    """A canary for the warning in docs/team-workflow.md. sshfs (under dvc-ssh 4.3) connects with known_hosts=None,
    which makes asyncssh accept any host key: a client whose known_hosts pins another key for this server still
    connects. If a release starts checking, this fails: turn it around and drop the warning."""
    other = tmp_path / "other"
    sshd.keygen(other)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    pinned = " ".join(other.with_suffix(".pub").read_text().split()[:2])
    (home / ".ssh/known_hosts").write_text(f"[127.0.0.1]:{team.server.port} {pinned}\n")
    proc = sh(["dvc", "status", "--cloud"], team.a, check=False, env={"HOME": str(home)})
    assert proc.returncode == 0, proc.stderr


def run_cache_stages(repo: Path) -> set[str]:
    """The stages the run cache holds a run of (entries are lock-file YAML under .dvc/cache/runs/)."""
    entries = (repo / ".dvc/cache/runs").glob("*/*/*")
    return {yaml.safe_load(e.read_text())["cmd"].split()[1] for e in entries}  # "finetune <stage> ..."


def test_run_cache_lets_a_teammate_skip_training(team, sweep):
    # DVC records no run of a stage with a persist out or an uncached one (dvc/stage/__init__.py: `run_cache=not
    # no_cache_outs`; dvc/stage/cache.py: `_can_hash`); dvc.yaml keeps train's outs cached for this.
    assert "train" in run_cache_stages(team.a)  # the command, "finetune train …"
    c = clone(team, "c")
    sh(["dvc", "pull", "--run-cache"], c, env=team.env)
    assert run_cache_stages(c) == run_cache_stages(team.a)  # every run A recorded came over SSH
    # --pull: `pull --run-cache` brought the records of A's runs and HEAD's data; the outputs of the run to restore
    # come from the remote as the run is restored.
    out = sh(["dvc", "exp", "run", "--pull", "-S", "lora.r=64"], c, env=team.env).stdout
    # Same stage, deps and params as A's run: DVC restores its outputs instead of running the command.
    assert "Stage 'train@heating' is cached - skipping run, checking out outputs" in out, out
    assert "train@heating" not in ran_stages(out), out
    assert digests(c / "models/heating") == sweep.adapter


def test_pulled_experiment_is_listed_shows_and_applies(team, sweep):
    d = clone(team, "d")
    listed = sh(["dvc", "exp", "list", "origin"], d, env=team.env).stdout
    assert sweep.name in listed, listed
    sh(["dvc", "exp", "pull", "origin", sweep.name], d, env=team.env)
    shown = sh(["dvc", "exp", "show", "--csv", "--keep", r"lora\.r"], d, env=team.env).stdout
    assert sweep.name in shown, shown
    sh(["dvc", "exp", "apply", sweep.name], d, env=team.env)
    assert "r: 64" in (d / "params.yaml").read_text()
    assert digests(d / "models/heating") == sweep.adapter


@pytest.mark.slow  # real `dvc repro`
def test_base_model_is_pinned_in_the_remote(tmp_path, tiny_base):
    """model.name a path that only A has (a stand-in for a hub id A can download and B cannot): A's base stage
    saves it into models/base and pushes it; B pulls those bytes and never needs the source."""
    hub = tmp_path / "hub" / "tiny-llama"
    shutil.copytree(tiny_base, hub)
    remote = tmp_path / "store"  # a plain directory remote: SSH is not the point here
    a = copy_repo(tmp_path / "a", merge(FAST, {"model": {"name": str(hub)}}))
    sh(["dvc", "remote", "add", "-d", "store", str(remote)], a)
    out = sh(["dvc", "repro", "base"], a)
    assert ran_stages(out.stdout) == {"base"}, out.stdout
    assert f"{hub}:" in out.stderr  # base logs what it loaded
    sh(["git", "add", "-A"], a)
    sh(["git", "commit", "-qm", "base"], a)
    sh(["dvc", "push"], a)

    shutil.rmtree(hub)  # gone, as the hub is for an offline teammate
    b = tmp_path / "b"
    sh(["git", "clone", "-q", str(a), str(b)], tmp_path)
    sh(["dvc", "pull", "base"], b)
    assert digests(b / "models/base") == digests(a / "models/base")
    out = sh(["dvc", "repro", "base"], b).stdout
    assert ran_stages(out) == set(), out
