"""Every ``curl`` command the README shows in a ``bash`` block runs as printed after ``make up``
(the banner's lines are tested in test_platform_up.py): the commands are read from README.md,
with the API's port and the placeholders the README names replaced (``<id>``: the demo model's
id; an example job id: the one the block's previous command was answered with), run by bash
with ``$TOKEN`` set, and each must answer without an error envelope; the jobs they start must
succeed."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time

import pytest

from tests.integration.conftest import DEMO_MODEL
from tests.utils.platform import REPO_ROOT, integration_marks

pytestmark = integration_marks(timeout_s=900)
JOB_ID = re.compile(r"\b(?:train|tune|batch|materialize)-job-[0-9a-f]{12}\b")


def readme_commands() -> list[list[str]]:
    """The ``curl`` commands of each ``bash`` block of README.md, each block a list (in order)."""
    blocks: list[list[str]] = []
    block: list[str] | None = None
    for line in (REPO_ROOT / "README.md").read_text().splitlines():
        if line.startswith("```"):
            if block is None and line.strip() == "```bash":
                block = []
            elif block is not None:
                if block:
                    blocks.append(block)
                block = None
            continue
        if block is None:
            continue
        if block and _open(block[-1]):
            block[-1] += "\n" + line  # the command goes on (a backslash, or a quote still open)
        elif line.startswith("curl "):
            block.append(line)
    return blocks


def _open(command: str) -> bool:
    """Whether a command continues on the next line (a trailing backslash or an open quote)."""
    if command.rstrip().endswith("\\"):
        return True
    try:
        shlex.split(command)
    except ValueError:
        return True
    return False


def test_the_readme_has_curl_commands_to_run():
    commands = [c for block in readme_commands() for c in block]
    assert len(commands) >= 6, commands
    assert all(not _open(c) for c in commands), commands


def test_every_curl_command_of_the_readme_runs_as_printed(up, http):
    headers = {"Authorization": f"Bearer {up.token()}"}
    demo = http.get(f"{up.api}/api/v1/models", headers=headers, params={"name_prefix": DEMO_MODEL}).json()["data"][0]["model_id"]
    started = []
    for block in readme_commands():
        last_job = None
        for printed in block:
            command = printed.replace("http://127.0.0.1:8000", up.api).replace("<id>", demo)
            if last_job:
                command = JOB_ID.sub(last_job, command)
            done = subprocess.run(["bash", "-c", command], env={**up.env, "TOKEN": up.token()}, capture_output=True,
                                  text=True, timeout=120, check=False, cwd=REPO_ROOT)  # as the README: from the repository root
            assert done.returncode == 0, (command, done.stderr)
            answer = json.loads(done.stdout)
            assert not isinstance(answer.get("error"), dict), (command, answer)  # no envelope (a job's "error" is null)
            if "job_id" in answer:
                last_job = answer["job_id"]
                if answer["job_id"] not in started:
                    started.append(answer["job_id"])
    assert started, "no README command started a job"
    for job_id in started:  # the README's jobs run to the end: none of them is an example that fails
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            job = http.get(f"{up.api}/api/v1/jobs/{job_id}", headers=headers).json()
            if job["status"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(2)
        else:
            pytest.fail(f"{job_id} did not end: {job}")
        assert job["status"] == "succeeded", job
