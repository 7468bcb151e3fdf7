"""Every `salient ...` command the images, docker-compose.yml and the Kubernetes manifests run parses
with salient's own command-line parser (api.cli.build_parser): a renamed flag or subcommand breaks
this test instead of a deployment."""
from __future__ import annotations

import contextlib
import io

import pytest

from compose_stack import all_argvs, read_env_file, salient_commands

# .env.example with the two secrets filled in (their values do not reach any salient command)
ENV = {**read_env_file(), "RAY_AUTH_TOKEN": "0" * 64, "SALIENT_API_TOKENS": "tok:read"}
COMMANDS = salient_commands(ENV)


def test_every_deploy_file_runs_something_and_the_salient_ones_are_found():
    wheres = {w.split(":")[0] for w, _ in all_argvs(ENV)}
    assert {"Dockerfile", "docker-compose.yml", "deploy/k8s/api.yaml", "deploy/k8s/retrain-cronjob.yaml",
            "deploy/k8s/rayjob-attribute.yaml"} <= wheres
    subcommands = {_subcommand(argv) for _, argv in COMMANDS}
    # the API (image, compose, k8s), the scheduler, the nightly retrain and the RayJob's attribution
    assert {"serve", "schedule", "retrain", "attribute"} <= subcommands, subcommands
    assert len(COMMANDS) >= 7, COMMANDS


def _subcommand(argv: list[str]) -> str:
    """The subcommand of `salient` argv (after the global options, each `--flag VALUE`)."""
    i = 0
    while argv[i].startswith("--"):
        i += 2
    return argv[i]


@pytest.mark.parametrize("where,argv", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_command_parses_with_salients_parser(where, argv):
    from api.cli import build_parser

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"{where}: `salient {' '.join(argv)}` does not parse:\n{err.getvalue()}")
    assert callable(args.func)


@pytest.mark.parametrize("address", ["", "ray://ray-head:10001"])
def test_join_ray_execs_the_command_when_there_is_no_node_to_join(address, tmp_path):
    """deploy/docker/join-ray.sh runs `ray start` only for a GCS address; otherwise it only execs.
    (PATH holds no `ray` here, so a `ray start` attempt would fail the script.)"""
    import os
    import subprocess

    from compose_stack import REPO

    script = REPO / "deploy" / "docker" / "join-ray.sh"
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0
    env = {"PATH": "/usr/bin:/bin", "RAY_ADDRESS": address, "HOME": os.environ.get("HOME", "/tmp")}
    out = subprocess.run(["sh", str(script), "echo", "exec", "ok"], env=env, capture_output=True, text=True, timeout=30)
    assert (out.returncode, out.stdout) == (0, "exec ok\n"), out.stderr


def test_join_ray_starts_a_zero_resource_node_for_a_gcs_address():
    """With RAY_ADDRESS=host:port the script must reach `ray start`; with no `ray` on PATH that fails
    loudly (set -e) and the command is never run."""
    import subprocess

    from compose_stack import REPO

    script = REPO / "deploy" / "docker" / "join-ray.sh"
    out = subprocess.run(["sh", str(script), "echo", "should-not-run"], capture_output=True, text=True, timeout=30,
                         env={"PATH": "/usr/bin:/bin", "RAY_ADDRESS": "ray-head:6379"})
    assert out.returncode != 0 and "should-not-run" not in out.stdout
    assert "--num-cpus=0 --num-gpus=0" in script.read_text()
