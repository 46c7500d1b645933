"""oneDNN on by default (the user's TF_ENABLE_ONEDNN_OPTS always wins) and the machine facts
every summary.json / results.json records."""

import json
import os
import subprocess
import sys

import pytest

from msd_tf import machine
from tests.conftest import REPO

ZEN3 = """processor	: 0
vendor_id	: AuthenticAMD
model name	: AMD EPYC 7B13
flags		: fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2
processor	: 1
model name	: AMD EPYC 7B13
flags		: fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2
"""
ZEN4_FLAGS = {"sse4_2", "avx", "avx2", "avx512f", "avx512bw", "avx512_bf16", "avx512_vnni"}
SAPPHIRE_FLAGS = ZEN4_FLAGS | {"amx_tile", "amx_bf16", "amx_int8"}


def test_cpu_facts_from_cpuinfo():
    model, flags = machine.cpu_model_and_flags(ZEN3)
    assert model == "AMD EPYC 7B13" and "avx2" in flags and "avx512f" not in flags
    assert machine.isa_level(flags) == ["AVX2"]
    assert machine.isa_level(ZEN4_FLAGS) == ["AVX-512", "BF16", "VNNI"]
    assert machine.isa_level(SAPPHIRE_FLAGS) == ["AMX", "BF16", "AMX-BF16", "VNNI"]
    assert machine.isa_level({"sse4_2"}) == ["SSE4.2"]


def test_the_users_setting_always_wins():
    assert machine.onednn_default({}, "x86_64") == "1"
    assert machine.onednn_default({}, "AMD64") == "1"
    assert machine.onednn_default({"TF_ENABLE_ONEDNN_OPTS": "0"}, "x86_64") is None
    assert machine.onednn_default({"TF_ENABLE_ONEDNN_OPTS": "1"}, "x86_64") is None
    assert machine.onednn_default({}, "aarch64") is None  # TensorFlow's own default there
    # Too late once TensorFlow is imported: the variable is read at its import.
    assert machine.onednn_default({}, "x86_64", tensorflow_imported=True) is None


def test_advice_only_when_off_by_default_on_x86():
    advice = machine.onednn_advice({}, False, "x86_64")
    assert "TF_ENABLE_ONEDNN_OPTS=1" in advice and "\n" not in advice
    assert machine.onednn_advice({}, True, "x86_64") is None
    assert machine.onednn_advice({"TF_ENABLE_ONEDNN_OPTS": "0"}, False, "x86_64") is None
    assert machine.onednn_advice({}, False, "aarch64") is None


def _facts_in_a_fresh_process(value):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = value
    code = ("import json, msd_tf, tensorflow; from msd_tf import machine; "
            "print(json.dumps(machine.facts()))")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not machine.is_x86(), reason="oneDNN's default is only changed on x86")
def test_onednn_on_unless_the_user_turned_it_off():
    # What summary.json and results.json record (machine.facts()), in a process that
    # imports msd_tf then TensorFlow, as every entry point does. (A user's "1" is left
    # alone as their "0" is: onednn_default's cases above; each process costs 7 s.)
    unset, off = (_facts_in_a_fresh_process(v) for v in (None, "0"))
    assert unset["onednn"] is True and unset["TF_ENABLE_ONEDNN_OPTS"] == "1"
    assert off["onednn"] is False and off["TF_ENABLE_ONEDNN_OPTS"] == "0"
    import tensorflow as tf

    assert unset["tensorflow"] == tf.__version__ and unset["cpus"] >= 1
    assert unset["cpu"] and isinstance(unset["isa"], list)
    assert machine.describe(off).count("oneDNN off") == 1


def test_the_advice_is_printed_once(monkeypatch):
    printed = []
    monkeypatch.setattr(machine, "_warned", [])
    monkeypatch.setattr(machine, "onednn_enabled", lambda: False)
    monkeypatch.setattr(machine, "is_x86", lambda m=None: True)
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    machine.warn_if_onednn_off(printed.append)
    machine.warn_if_onednn_off(printed.append)
    assert len(printed) == 1 and "TF_ENABLE_ONEDNN_OPTS=1" in printed[0]
