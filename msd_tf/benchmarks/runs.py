"""The one way the benchmarks run a command: `python -m <module> <args>` in the current
folder, its output appended to a log, timed; a failure raises `BenchmarkError` with the
command's own last `error:` line (only the CLIs exit)."""

import os
import subprocess
import sys
import time


class BenchmarkError(RuntimeError):
    """A step of a benchmark failed; the message says which, why, and where its log is."""


def last_error(lines: list[str]) -> str:
    """What a failed command said: its last `error:` line, else its last line."""
    lines = [line.strip() for line in lines if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return errors[-1][7:] if errors else lines[-1] if lines else "no output"


def run(module: str, args: list[str], log_path: str, *, dry_run: bool = False) -> float:
    """Runs `python -m module *args`; returns the wall seconds it took.

    Raises:
      BenchmarkError: a non-zero exit (the message names the log).
    """
    print(f"+ python -m {module} " + " ".join(args), flush=True)
    if dry_run:
        return 0.0
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    t0 = time.time()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    with open(log_path, "a") as log:
        res = subprocess.run([sys.executable, "-m", module, *args], stdout=log,
                             stderr=subprocess.STDOUT, env=env)
    if res.returncode:
        with open(log_path) as f:
            tail = f.readlines()[-30:]
        raise BenchmarkError(f"{module} failed (exit {res.returncode}): {last_error(tail)} "
                             f"(log: {log_path}). Fix it and run the same command again to "
                             f"continue.")
    return time.time() - t0
