"""What every command-line entry point shares: flagfile lookup, flag parsing that ends
in one `error:` line, and the exit code for bad input.

Flagfiles: `--flagfile=flags/mnist/msd.cfg` is read relative to the current folder
when it exists there; otherwise from the flagfiles shipped with the package (the
repository's `flags/` in a checkout, `msd_tf/flagfiles/` in an installed wheel), so
the documented commands work from any folder. Nested `--flagfile=` lines resolve the
same way. Flags keep absl's order: the last value wins.
"""

import logging
import os
import sys

from absl import flags

BAD_INPUT = 2  # exit code of every `error:` line


def fail(message: str) -> None:
    """Prints `error: message` on stderr and exits with `BAD_INPUT`."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(BAD_INPUT)


def nondeterministic_op(error: Exception) -> str | None:
    """The `error:` message for TF's "no deterministic implementation" error (some GPU
    kernels under op determinism), naming the op and the escape; None for other errors."""
    text = str(error)
    if "determinis" not in text.lower():
        return None
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return (f"an op has no deterministic implementation on this device ({first}); rerun "
            "with --nodeterministic (runs are then not bit-exact) or avoid that op.")


def flag_roots() -> list[str]:
    """Folders holding the shipped flagfiles (installed package first)."""
    package = os.path.dirname(os.path.abspath(__file__))
    return [os.path.join(package, "flagfiles"), os.path.join(os.path.dirname(package), "flags")]


def resolve_flagfile(path: str) -> str:
    """`path` if it exists, else the shipped flagfile of that name.

    Raises:
      FileNotFoundError: neither exists (the message names both places looked in).
    """
    if os.path.isfile(path):
        return path
    rel = os.path.normpath(path)
    rel = rel[len("flags" + os.sep):] if rel.startswith("flags" + os.sep) else rel
    for root in flag_roots():
        candidate = os.path.join(root, rel)
        if not os.path.isabs(path) and os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(f"flagfile {path} not found (looked in {os.getcwd()} and in the "
                            f"shipped flagfiles {flag_roots()[0]} / {flag_roots()[1]}).")


def _flagfile_lines(path: str, seen: tuple[str, ...]) -> list[str]:
    path = resolve_flagfile(path)
    key = os.path.realpath(path)
    if key in seen:
        raise ValueError(f"flagfile {path} includes itself (through {' -> '.join(seen)}).")
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", "//")):
                continue
            out += expand_flagfiles([line], seen + (key,))
    return out


def expand_flagfiles(argv: list[str], seen: tuple[str, ...] = ()) -> list[str]:
    """Replaces every `--flagfile=F` (or `--flagfile F`) by the lines of F, recursively."""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith(("--flagfile=", "-flagfile=")):
            out += _flagfile_lines(arg.split("=", 1)[1], seen)
        elif arg in ("--flagfile", "-flagfile") and i + 1 < len(argv):
            out += _flagfile_lines(argv[i + 1], seen)
            i += 1
        else:
            out.append(arg)
        i += 1
    return out


def parse_flags(argv: list[str]) -> list[str]:
    """`app.run`'s `flags_parser`: absl parsing, but bad flags end in one `error:` line
    (exit code 2) instead of absl's "FATAL Flags parsing error" block."""
    try:
        expanded = [argv[0], *expand_flagfiles(list(argv[1:]))]
        rest = flags.FLAGS(expanded)
    except (flags.Error, OSError, ValueError) as e:
        fail(f"{str(e).rstrip('.')}. See --helpshort for the flags.")
    quiet_libraries()
    return rest


class _OursOrImportant(logging.Filter):
    """Passes msd_tf's records and everybody's warnings; drops the INFO lines that
    TensorFlow and Keras send through absl (they would bury ours)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or f"{os.sep}msd_tf{os.sep}" in record.pathname


def run_app(main) -> None:
    """Runs an absl `main` as a command: TensorFlow's C++ logs at warnings and above,
    flags parsed by `parse_flags` (one `error:` line for a bad flag)."""
    from absl import app

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app.run(main, flags_parser=parse_flags)


def quiet_libraries() -> None:
    """Installs `_OursOrImportant` on absl's log handler (idempotent)."""
    from absl import logging as absl_logging

    handler = absl_logging.get_absl_handler()
    if not any(isinstance(f, _OursOrImportant) for f in handler.filters):
        handler.addFilter(_OursOrImportant())



def configure_process(*, deterministic: bool, seed: int | None = None,
                      precision: str | None = None) -> None:
    """The process-wide TensorFlow set-up every command line runs first (training and
    evaluation alike): quiet INFO logs, the one-line oneDNN advice, op determinism with
    one inter-op thread (`deterministic`), and for training the Keras seed and dtype
    policy (`--precision`).

    Measured on the 2-core CPU (2026-11-27): without determinism, two identical 60-step
    MSD runs differed by 5e-3 in the weights (concurrent ops reorder float sums, and the
    attacks' sign / top-k / argmax amplify it); with it, 3 of 3 MNIST pairs and a PreAct
    ResNet-18 pair were bit-identical with oneDNN's kernels on, at no measurable cost
    (28 s vs 27 s for 40 steps; switching oneDNN off, as before, took 48 s).
    """
    import keras
    import tensorflow as tf

    from msd_tf import machine

    tf.get_logger().setLevel("WARNING")  # TF's INFO lines would bury our messages
    machine.warn_if_onednn_off()
    if deterministic:
        tf.config.experimental.enable_op_determinism()
        tf.config.threading.set_inter_op_parallelism_threads(1)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    if precision is not None:
        keras.mixed_precision.set_global_policy(precision)
