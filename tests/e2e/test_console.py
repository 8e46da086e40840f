"""What a person reads, through the real CLI on tiny-random-llama: a sweep's console has one line per
job event and a sweep-level count, no progress bars and no library warnings; each job's folder has
its full log (progress bars, warnings once each); a failed run's line names that log."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import run_cli

# smoke's two jobs (lora, pissa on tiny-random-llama), evaluation trimmed to the least that runs
SWEEP = ["+sweep=smoke", "task.n_eval=2", "forgetting.probes=[]", "forgetting.target_gain=false",
         "eval.latency_tokens=0"]
RUN = r"(lora|pissa) tiny-random-llama gsm8k smoke seed=0"
BAR_MARKS = ("it/s", "s/it", "%|", "█", "\r")
PISSA_WARNING = "PiSSA changes the base weights of the model and should thus not be used with other adapters"


def _events(stdout: str, event: str) -> list[tuple[str, str]]:
    """(job number, method) of each `[sweep N/2 <event>...] <run>` line."""
    return re.findall(rf"^\[sweep (\d)/2 {event}[^\]]*\] {RUN}\b", stdout, re.M)


def _job_logs(results: Path) -> dict[str, str]:
    """method -> the text of its job's log, for every job of the (one) smoke sweep."""
    logs = {}
    for log in results.glob("sweeps/smoke/*/*/job.log"):
        text = log.read_text()
        logs[re.search(rf"\] {RUN}", text).group(1)] = text
    return logs


def test_parallel_sweep_console_has_one_line_per_job_event_and_logs_hold_the_rest(tmp_path, test_data):
    proc = run_cli([*SWEEP, "+launcher=local_parallel", "hydra.launcher.n_jobs=2"], tmp_path,
                   {"HARNESS_DATA_DIR": str(test_data)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert out.startswith("[sweep smoke] 2 jobs (joblib launcher, n_jobs=2) in ")
    starts, dones = _events(out, "start"), _events(out, r"done \w+")
    assert sorted(starts) == sorted(dones) and len(starts) == 2
    assert {n for n, _ in starts} == {"1", "2"} and {m for _, m in starts} == {"lora", "pissa"}
    assert re.search(r"^  sweep: 2/2 done, \w+ elapsed$", out, re.M)  # counted across the two worker processes
    assert "=== sweep smoke: 2 runs" in out  # the comparison table stays
    console = out + proc.stderr
    assert not [mark for mark in BAR_MARKS if mark in console], console
    assert "Warning" not in console and "warnings.warn" not in console and PISSA_WARNING not in console

    logs = _job_logs(tmp_path)
    assert set(logs) == {"lora", "pissa"}
    for method, log in logs.items():
        assert re.search(r"train: 100%.*loss=", log), log[-2000:]  # the training progress bar
        assert re.search(rf"\[sweep \d/2 done \w+\] {method} ", log)  # the console's lines, timestamped
        warned = re.findall(r"\]\[py\.warnings\]\[WARNING\] - (.*)", log)
        assert len(warned) == len(set(warned))  # each warning once per job
    assert logs["pissa"].count(PISSA_WARNING) == 1 and PISSA_WARNING not in logs["lora"]


def test_failed_run_line_names_its_log_and_the_sweep_counts_on(tmp_path, test_data):
    # basic launcher: both jobs in this process, one after the other; the first fails in its evaluation
    proc = run_cli(SWEEP, tmp_path, {"HARNESS_DATA_DIR": str(test_data), "HARNESS_TEST_RAISE_AT": "mid_eval:1"})
    assert proc.returncode == 1, proc.stderr[-3000:]
    failed = re.search(r"^\[sweep 1/2 failed \w+\] lora tiny-random-llama gsm8k smoke seed=0 \(\w+\): "
                       r"RuntimeError: injected failure at mid_eval .*; full log: (\S+)$", proc.stdout, re.M)
    assert failed, proc.stdout
    log = Path(failed.group(1))
    assert log.name == "job.log" and log.parent.name == "0"
    assert "train: 100%" in log.read_text() and "[sweep 1/2 failed" in log.read_text()
    assert re.search(r"^  sweep: 1/2 done, \w+ elapsed, about \w+ left$", proc.stdout, re.M)
    assert _events(proc.stdout, r"done \w+") == [("2", "pissa")]
    assert "1 run(s) did not finish:" in proc.stdout
    assert not [mark for mark in BAR_MARKS if mark in proc.stdout + proc.stderr]
