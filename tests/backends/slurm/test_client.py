"""SlurmClient against the real test cluster; faults are injected by wrapping the real commands."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from experiments.backends.slurm.client import SlurmClient, SubmissionUncertain
from experiments.backends.slurm.parse import expand_key, map_state, merge, parse_job_id
from experiments.backends.slurm.script import render_script
from experiments.errors import SchedulerQueryError, SubmissionError
from experiments.states import JobState, TaskStatus
from tests.support.slurm import wrap

TIMEOUT_ERR = "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation"


# -- pure helpers (no cluster) --------------------------------------------------------------
def test_state_mapping() -> None:
    cases = {"PENDING": JobState.PENDING, "REQUEUED": JobState.PENDING,
             "SUSPENDED": JobState.RUNNING, "COMPLETING": JobState.RUNNING,
             "COMPLETED": JobState.COMPLETED, "OUT_OF_MEMORY": JobState.FAILED,
             "PREEMPTED": JobState.FAILED, "NODE_FAIL": JobState.FAILED,
             "CANCELLED by 0": JobState.CANCELLED, "CANCELLED+": JobState.CANCELLED,
             "WEIRD_NEW_STATE": JobState.UNKNOWN, "": JobState.UNKNOWN}
    assert {raw: map_state(raw) for raw in cases} == cases


def test_expand_and_parse() -> None:
    assert expand_key("12_[0-2,5%2]") == ["12_0", "12_1", "12_2", "12_5"]
    assert expand_key("12_[7]") == ["12_7"]
    assert expand_key("12_3") == ["12_3"] and expand_key("12") == ["12"]
    assert parse_job_id("123\n") == "123" and parse_job_id("123;exptest\n") == "123"
    assert parse_job_id("") is None and parse_job_id("Submitted batch job 5") is None


def test_merge_prefers_squeue_and_distrusts_stale_live_sacct_rows() -> None:
    def st(state: JobState) -> TaskStatus:
        return TaskStatus(state, state.value.upper(), "None", "0:0")
    live = {"5_0": st(JobState.RUNNING)}
    acct = {"5_0": st(JobState.COMPLETED), "5_1": st(JobState.FAILED), "5": st(JobState.PENDING),
            "6": st(JobState.RUNNING)}
    out = merge(live, acct)
    assert out["5_0"].state is JobState.RUNNING and out["5_1"].state is JobState.FAILED
    assert "5" not in out  # sacct's not-yet-split array row
    assert out["6"].state is JobState.UNKNOWN and out["6"].raw == "RUNNING"


# -- the real cluster -----------------------------------------------------------------------
def fast_client(env: dict[str, str]) -> SlurmClient:
    return SlurmClient(env, backoff_s=0.05, max_backoff_s=0.2, timeout_s=30, settle_s=0.1)


def job_script(tmp: Path, array: str = "0", name: str = "x") -> str:
    """A rendered batch script whose stand-in "python" fails for task index 1 only."""
    fake = tmp / "fake-python"
    fake.write_text('#!/bin/bash\n[ "$4" != 1 ]\n')
    fake.chmod(0o755)
    logs = tmp / "logs"
    logs.mkdir(exist_ok=True)
    text = render_script(job_name=name, options=[("time", "5"), ("partition", "cpu")], array=array,
                         output=f"{logs}/%A_%a.log", spec_dir=str(tmp), python=str(fake))
    path = tmp / f"{name}.sbatch"
    path.write_text(text)
    return str(path)


def unique(tag: str) -> str:
    return f"ctest-{tag}-{uuid.uuid4().hex[:10]}"


def jobs_named(env: dict[str, str], name: str) -> set[str]:
    res = subprocess.run(["squeue", "--me", "-h", "-t", "all", f"--name={name}", "-o", "%F"],
                         env={**os.environ, **env}, capture_output=True, text=True, timeout=30,
                         check=True)
    return set(res.stdout.split())


def wait_finished(client: SlurmClient, ids: Sequence[str], n_keys: int,
                  timeout_s: float = 120) -> dict[str, TaskStatus]:
    deadline = time.monotonic() + timeout_s
    while True:
        states = client.query(ids)
        if len(states) >= n_keys and not any(s.state.live for s in states.values()):
            return states
        assert time.monotonic() < deadline, f"still live after {timeout_s} s: {states}"
        time.sleep(0.5)


@pytest.fixture
def cleanup() -> Iterator[list[tuple[dict[str, str], str]]]:
    """Names of jobs to cancel at the end, with the env of their cluster."""
    names: list[tuple[dict[str, str], str]] = []
    yield names
    for env, name in names:
        ids = jobs_named(env, name)
        if ids:
            subprocess.run(["scancel", *ids], env={**os.environ, **env}, timeout=30)



@pytest.mark.slurm
def test_submit_then_query_until_finished(slurm_cluster, tmp_path: Path, cleanup) -> None:
    name = unique("run")
    cleanup.append((slurm_cluster.env, name))
    client = SlurmClient(slurm_cluster.env)
    job_id = client.submit(job_script(tmp_path, "0-2", name), job_name=name)
    states = wait_finished(client, [job_id], 3)
    assert {k: (s.state, s.exit_code) for k, s in states.items()} == {
        f"{job_id}_0": (JobState.COMPLETED, "0:0"), f"{job_id}_1": (JobState.FAILED, "1:0"),
        f"{job_id}_2": (JobState.COMPLETED, "0:0")}
    assert client.find_by_name(name) == [job_id]  # a finished array is still found
    log = (tmp_path / "logs" / f"{job_id}_1.log").read_text()
    assert f"task {job_id}_1 on" in log and "restart 0" in log


@pytest.mark.slurm
def test_cancel_held_array_and_single_task(slurm_cluster, tmp_path: Path, cleanup) -> None:
    client = SlurmClient(slurm_cluster.env)
    ids = []
    for tag in ("a", "b"):
        name = unique(f"held{tag}")
        cleanup.append((slurm_cluster.env, name))
        ids.append(client.submit(job_script(tmp_path, "0-3", name), job_name=name,
                                 extra_args=["--hold"]))
    states = client.query(ids)
    assert len(states) == 8 and {s.state for s in states.values()} == {JobState.PENDING}
    assert states[f"{ids[0]}_2"].reason == "JobHeldUser"
    client.cancel([ids[0], f"{ids[1]}_1"])
    deadline = time.monotonic() + 60  # scancel returns before the controller has acted
    while True:  # accounting may list the task cancelled out of the array as pending a while
        states = client.query(ids)
        cancelled = {states[f"{ids[0]}_{i}"].state for i in range(4)} == {JobState.CANCELLED}
        settled = f"{ids[1]}_1" not in states or states[f"{ids[1]}_1"].state is not (
            JobState.UNKNOWN)
        if (cancelled and settled) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert {states[f"{ids[0]}_{i}"].state for i in range(4)} == {JobState.CANCELLED}
    # a task cancelled out of a not-yet-split array leaves no trace: missing means unknown
    assert f"{ids[1]}_1" not in states or states[f"{ids[1]}_1"].state is JobState.CANCELLED
    assert {states[f"{ids[1]}_{i}"].state for i in (0, 2, 3)} == {JobState.PENDING}


@pytest.mark.slurm
def test_query_of_many_tasks_is_one_squeue_and_one_sacct(slurm_cluster, tmp_path: Path,
                                                         cleanup) -> None:
    w = wrap(tmp_path, slurm_cluster.env)
    client = fast_client(w.env)
    ids = []
    for i in range(3):
        name = unique(f"many{i}")
        cleanup.append((slurm_cluster.env, name))
        ids.append(client.submit(job_script(tmp_path, "0-299", name), job_name=name,
                                 extra_args=["--hold"]))
    states = client.query([*ids, "999999999"])  # a long-gone id is simply absent
    assert (w.calls("squeue"), w.calls("sacct")) == (1, 1)
    assert len(states) == 900 and {s.state for s in states.values()} == {JobState.PENDING}
    client.cancel(ids)
    assert w.calls("scancel") == 1


@pytest.mark.slurm
def test_unknown_ids_give_an_empty_answer(slurm_cluster) -> None:
    assert SlurmClient(slurm_cluster.env).query(["999999998", "999999999_3"]) == {}


@pytest.mark.slurm
def test_permanent_rejection_is_one_call_with_slurms_words(slurm_cluster, tmp_path: Path,
                                                           cleanup) -> None:
    w = wrap(tmp_path, slurm_cluster.env)
    name = unique("nope")
    cleanup.append((slurm_cluster.env, name))
    with pytest.raises(SubmissionError) as err:
        fast_client(w.env).submit(job_script(tmp_path, "0", name), job_name=name,
                                  extra_args=["--partition=nope"])
    assert not isinstance(err.value, SubmissionUncertain)
    assert "Invalid partition name specified" in str(err.value) and name in str(err.value)
    assert w.calls("sbatch") == 1 and not jobs_named(slurm_cluster.env, name)


@pytest.mark.slurm
def test_timeout_after_submission_returns_the_real_job(slurm_cluster, tmp_path: Path,
                                                       cleanup) -> None:
    lost_reply = (f'"$REAL" "$@" > /dev/null || exit $?\necho "{TIMEOUT_ERR}" >&2\nexit 1')
    w = wrap(tmp_path, slurm_cluster.env, {"sbatch": lost_reply})
    name = unique("lost")
    cleanup.append((slurm_cluster.env, name))
    job_id = fast_client(w.env).submit(job_script(tmp_path, "0-2", name), job_name=name)
    assert jobs_named(slurm_cluster.env, name) == {job_id}
    assert w.calls("sbatch") == 1 and w.calls("squeue") >= 1


@pytest.mark.slurm
def test_noisy_success_is_one_submission(slurm_cluster, tmp_path: Path, cleanup) -> None:
    noisy = ('echo "sbatch: Slurm temporarily unable to accept job, sleeping and retrying" >&2'
             '\nexec "$REAL" "$@"')
    w = wrap(tmp_path, slurm_cluster.env, {"sbatch": noisy})
    name = unique("noisy")
    cleanup.append((slurm_cluster.env, name))
    job_id = fast_client(w.env).submit(job_script(tmp_path, "0", name), job_name=name)
    assert jobs_named(slurm_cluster.env, name) == {job_id}
    assert w.calls("sbatch") == 1 and w.calls("squeue") == 0


@pytest.mark.slurm
def test_transient_failures_then_success(slurm_cluster, tmp_path: Path, cleanup) -> None:
    count = tmp_path / "n"
    flaky = (f'n=$(cat {count} 2>/dev/null || echo 0); echo $((n+1)) > {count}\n'
             f'if [ "$n" -lt 2 ]; then echo "{TIMEOUT_ERR}" >&2; exit 1; fi\nexec "$REAL" "$@"')
    w = wrap(tmp_path, slurm_cluster.env, {"sbatch": flaky})
    name = unique("flaky")
    cleanup.append((slurm_cluster.env, name))
    job_id = fast_client(w.env).submit(job_script(tmp_path, "0", name), job_name=name)
    assert jobs_named(slurm_cluster.env, name) == {job_id}
    # two looks before each retry: at once, and again after the settle time
    assert w.calls("sbatch") == 3 and w.calls("squeue") == 4


@pytest.mark.slurm
def test_transient_failures_that_never_submit_end_in_an_error(slurm_cluster, tmp_path: Path
                                                              ) -> None:
    w = wrap(tmp_path, slurm_cluster.env,
             {"sbatch": 'echo "sbatch: error: Unable to contact slurm controller" >&2; exit 1'})
    name = unique("down")
    client = fast_client(w.env)
    with pytest.raises(SubmissionError, match="Unable to contact") as err:
        client.submit(job_script(tmp_path, "0", name), job_name=name)
    assert not isinstance(err.value, SubmissionUncertain)  # looked up: surely not submitted
    assert w.calls("sbatch") == client.attempts


@pytest.mark.slurm
def test_blind_lookup_never_resubmits(slurm_cluster, tmp_path: Path, cleanup) -> None:
    lost_reply = f'"$REAL" "$@" > /dev/null || exit $?\necho "{TIMEOUT_ERR}" >&2\nexit 1'
    down = 'echo "squeue: error: Unable to contact slurm controller (connect failure)" >&2\nexit 1'
    w = wrap(tmp_path, slurm_cluster.env, {"sbatch": lost_reply, "squeue": down})
    name = unique("blind")
    cleanup.append((slurm_cluster.env, name))
    with pytest.raises(SubmissionUncertain, match="could not be asked"):
        fast_client(w.env).submit(job_script(tmp_path, "0", name), job_name=name)
    assert w.calls("sbatch") == 1 and len(jobs_named(slurm_cluster.env, name)) == 1


@pytest.mark.slurm
def test_squeue_failure_is_a_scheduler_query_error(slurm_cluster, tmp_path: Path) -> None:
    w = wrap(tmp_path, slurm_cluster.env,
             {"squeue": 'echo "slurm_load_jobs error: Socket timed out" >&2; exit 1'})
    with pytest.raises(SchedulerQueryError, match="Socket timed out"):
        SlurmClient(w.env).query(["1"])


@pytest.mark.slurm
def test_test_only(slurm_cluster, tmp_path: Path) -> None:
    client = SlurmClient(slurm_cluster.env)
    assert client.test_only(job_script(tmp_path, "0-9", "ok")) is None
    bad = tmp_path / "bad.sbatch"
    bad.write_text(Path(job_script(tmp_path, "0", "bad")).read_text()
                   .replace("--partition=cpu", "--partition=nope"))
    assert "invalid partition" in (client.test_only(str(bad)) or "").lower()


@pytest.mark.slurm
def test_small_cluster_limit_and_no_accounting(small_array_cluster, tmp_path: Path,
                                               cleanup) -> None:
    w = wrap(tmp_path, small_array_cluster.env)
    client = fast_client(w.env)
    assert client.max_array_size() == small_array_cluster.max_array_size == 5
    client.max_array_size()
    assert w.calls("scontrol") == 1  # cached
    assert "Invalid job array specification" in (
        client.test_only(job_script(tmp_path, "0-5", "big")) or "")
    name = unique("small")
    cleanup.append((small_array_cluster.env, name))
    job_id = client.submit(job_script(tmp_path, "0-4", name), job_name=name)
    states = wait_finished(client, [job_id], 5)  # sacct says "accounting storage is disabled"
    assert states[f"{job_id}_1"].state is JobState.FAILED
    assert sum(s.state is JobState.COMPLETED for s in states.values()) == 4
    assert w.calls("sacct") >= 1 and client.find_by_name(name) == [job_id]
