"""The machine a number came from, and oneDNN on by default.

TensorFlow turns its oneDNN kernels on by itself only on x86 CPUs with AVX-512-class
features; on an AVX2-only CPU (e.g. AMD Zen 3) it leaves them off, and our training step
runs about 1.5x slower there (measured on a 2-core Zen 3 EPYC). `import msd_tf`
(which every entry point does before it imports TensorFlow) therefore sets
`TF_ENABLE_ONEDNN_OPTS=1` on x86 unless the user set the variable: their choice always
wins. If TensorFlow was imported first, the variable can no longer change anything;
`warn_if_onednn_off()` then says once, in one line, how to turn it on.

`facts()` is what every summary.json, results.json and benchmark line records: CPU
model, instruction-set level, whether oneDNN is on, thread counts, versions.
"""

import os
import platform
import sys

ONEDNN_VAR = "TF_ENABLE_ONEDNN_OPTS"
_X86 = ("x86_64", "amd64", "i386", "i686", "x86")
# /proc/cpuinfo flag -> the ISA name we report, most capable first.
_ISA_FLAGS = (("amx_tile", "AMX"), ("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"),
              ("sse4_2", "SSE4.2"))
_warned = []


def is_x86(machine: str | None = None) -> bool:
    return (machine or platform.machine()).lower() in _X86


def onednn_default(environ, machine: str | None = None,
                   tensorflow_imported: bool = False) -> str | None:
    """The value to give `TF_ENABLE_ONEDNN_OPTS`, or None to leave the environment alone:
    "1" on x86 when the user did not set it and TensorFlow is not imported yet."""
    if ONEDNN_VAR in environ or tensorflow_imported or not is_x86(machine):
        return None
    return "1"


def enable_onednn_by_default() -> None:
    """Sets `TF_ENABLE_ONEDNN_OPTS=1` if `onednn_default` says so (called by `import
    msd_tf`)."""
    value = onednn_default(os.environ, tensorflow_imported="tensorflow" in sys.modules)
    if value is not None:
        os.environ[ONEDNN_VAR] = value


def onednn_enabled() -> bool | None:
    """Whether this process's TensorFlow runs oneDNN kernels (None if it cannot say)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return None


def onednn_advice(environ, enabled: bool | None, machine: str | None = None) -> str | None:
    """The one line to print when oneDNN is off on x86 and the user did not ask for it."""
    if enabled is False and ONEDNN_VAR not in environ and is_x86(machine):
        return ("note: TensorFlow's oneDNN kernels are off (TensorFlow was imported before "
                f"msd_tf, on a CPU where its default leaves them off); set {ONEDNN_VAR}=1 "
                "before Python starts (or import msd_tf first) for ~1.5x faster CPU steps.")
    return None


def warn_if_onednn_off(log=None) -> None:
    """Prints `onednn_advice` once per process (to stderr unless `log` is given)."""
    advice = onednn_advice(os.environ, onednn_enabled())
    if advice and not _warned:
        _warned.append(advice)
        (log or (lambda m: print(m, file=sys.stderr, flush=True)))(advice)


def cpu_model_and_flags(cpuinfo: str | None = None) -> tuple[str, set]:
    """The CPU's model name and feature flags, from /proc/cpuinfo (Linux) or `platform`."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            cpuinfo = ""
    model, flags = "", set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return model or platform.processor() or platform.machine(), flags


def isa_level(flags: set) -> list[str]:
    """The vector extensions that matter for TensorFlow's CPU kernels, e.g. ["AVX-512",
    "BF16", "VNNI"]: the most capable level, then the extras."""
    levels = [name for flag, name in _ISA_FLAGS if flag in flags][:1]
    extras = [("avx512_bf16", "BF16"), ("amx_bf16", "AMX-BF16"), ("avx512_vnni", "VNNI"),
              ("avx_vnni", "AVX-VNNI")]
    return levels + [name for flag, name in extras if flag in flags]


def facts() -> dict:
    """The machine and software a measurement came from (imports TensorFlow)."""
    import keras
    import tensorflow as tf

    model, flags = cpu_model_and_flags()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": model,
        "isa": isa_level(flags),
        "cpus": usable,
        "onednn": onednn_enabled(),
        ONEDNN_VAR: os.environ.get(ONEDNN_VAR),
        "ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
    }


def describe(f: dict | None = None) -> str:
    """`facts()` in one line, as the benchmarks print it."""
    f = f or facts()
    threads = lambda n: "default" if n == 0 else str(n)  # noqa: E731
    onednn = {True: "on", False: "off", None: "unknown"}[f["onednn"]]
    isa = f["ONEDNN_MAX_CPU_ISA"]
    return (f"{f['cpu']} ({'/'.join(f['isa']) or 'no vector ISA reported'}), {f['cpus']} CPUs, "
            f"oneDNN {onednn}{f' (ONEDNN_MAX_CPU_ISA={isa})' if isa else ''}, threads intra "
            f"{threads(f['intra_op_threads'])} inter {threads(f['inter_op_threads'])}, "
            f"TF {f['tensorflow']}, Keras {f['keras']}, {f['gpus']} GPUs")
