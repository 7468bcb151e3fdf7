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
    subcommands = {next(a for a in argv if not a.startswith("-") and a != "/data/salient") for _, argv in COMMANDS}
    # the API (image, compose, k8s), the scheduler, the nightly retrain and the RayJob's attribution
    assert {"serve", "schedule", "retrain", "attribute"} <= subcommands, subcommands
    assert len(COMMANDS) >= 7, COMMANDS


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
