"""Recipe search for one method of the union benchmark, on digits the benchmark never reports.

    python scripts/tune_union.py --bench=runs/union_small --method=finetune_eat \
        --variant="lr1e-3=--lr_values=0,1e-3,0" --variant="nors=--norandom_start" \
        --output_dir=runs/tune_union

Each variant is the method's benchmark recipe (its flags and planned epochs in
`<bench>/plan.json`, offline data included, so the same compute budget; a fine-tuning
starts from the benchmark's P_inf model) with the variant's flags added after it; "base"
(no flags) is always trained.
A variant that changes the step's cost (attack iterations, the adversary) gets its
epochs re-planned: its `--cost` at the method's share of the same budget, its learning-rate
knots scaled as the benchmark's (so "5 MSD iterations" trains about twice the epochs of 10).
All are evaluated together by `msd_tf.evaluate` on `--tune_split` (default test[500:1000]:
never trained on, and not the benchmark's test[:500]) with `--attacks` (default APGD-CE and
APGD-T in every norm: most of what the strong suite breaks, a fraction of its time), and
`tune.md` lists them by union robust accuracy. Runs and the evaluation cache are reused when
the same command runs again; tune.md lists each variant's epochs and counted passes.
"""

import dataclasses
import json
import os
import subprocess
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from msd_tf import cli, union  # noqa: E402

_BENCH = flags.DEFINE_string("bench", "runs/union_small", "The benchmark's output folder.")
_METHOD = flags.DEFINE_string("method", None, "A method of the benchmark (its run name).")
_VARIANT = flags.DEFINE_multi_string("variant", [], "name=flags (space-separated).")
_SCALE = flags.DEFINE_string("scale", "small", "The benchmark's scale.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Offline data of the evaluation (default: the benchmark's).")
_TUNE_SPLIT = flags.DEFINE_string("tune_split", "test[500:1000]", "Digits to tune on.")
_NUM = flags.DEFINE_integer("num_examples", 200, "Digits of --tune_split evaluated.")
_ATTACKS = flags.DEFINE_list(
    "attacks", ["apgd_ce_linf", "apgd_t_linf", "apgd_ce_l2", "apgd_t_l2", "apgd_ce_l1",
                "apgd_t_l1"], "Attacks of the tuning evaluation.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs/tune_union", "Where runs go.")


def _run(cmd, log):
    print("+ " + " ".join(cmd), flush=True)
    with open(log, "a") as f:
        res = subprocess.run([sys.executable, *cmd], stdout=f, stderr=subprocess.STDOUT,
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if res.returncode:
        cli.fail(f"{cmd[1]} failed (exit {res.returncode}); see {log}.")


def main(argv):
    del argv
    methods = {m.name: m for m in union.METHODS.get(_SCALE.value, ())}
    if _METHOD.value not in methods:
        cli.fail(f"--method {_METHOD.value!r} is not a method of the {_SCALE.value} "
                 f"benchmark; known: {sorted(methods)}.")
    plan_path = os.path.join(_BENCH.value, "plan.json")
    if not os.path.exists(plan_path):
        cli.fail(f"{plan_path} missing: run `reproduce --table=union` first (or --dry_run).")
    plan = union.load_plan(plan_path)
    if _METHOD.value not in plan["recipes"]:
        cli.fail(f"{plan_path} has no {_METHOD.value} recipe: plan the benchmark with it "
                 f"(reproduce --table=union --models=...,{_METHOD.value} --dry_run).")
    if union.changed_recipes(plan, {_METHOD.value: plan["recipes"][_METHOD.value]}):
        cli.fail(f"{plan_path} was planned for another content of the {_METHOD.value} "
                 f"recipe's flagfiles than today's; plan the benchmark again in another "
                 f"--bench folder (reproduce --table=union --dry_run).")
    # The benchmark's own flags for it (offline data included), then the planned epochs.
    method = dataclasses.replace(methods[_METHOD.value],
                                 flags=tuple(plan["recipes"][_METHOD.value]))
    data_dir = _DATA_DIR.value or next(
        (f.split("=", 1)[1] for f in method.flags if f.startswith("--data_dir=")), None)
    variants = {"base": []}
    for v in _VARIANT.value:
        name, _, extra = v.partition("=")
        if not name or name in variants:
            cli.fail(f"--variant {v!r}: give each a new name, as name=flags.")
        variants[name] = extra.split()
    out = os.path.join(_OUTPUT_DIR.value, method.name)
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    epochs = {}
    for name, extra in variants.items():
        variant = dataclasses.replace(method, flags=(*method.flags, *extra))
        vplan = plan
        if extra:  # its own step cost at the method's share of the same budget
            cost = union.recipe_cost(list(variant.flags), f"--variant {name}")
            if cost["passes"] != plan["costs"][method.name]["passes"]:
                vplan = union.plan_epochs({method.name: cost}, [variant],
                                          budget=plan["budget_passes_per_example"])
        epochs[name] = vplan[method.name]["epochs"]
        _run(["-m", "msd_tf.main", *union.train_flags(variant, vplan, _BENCH.value),
              f"--output_dir={os.path.join(out, name)}"],
             os.path.join(out, "logs", f"{name}.log"))
    models = ",".join(os.path.join(out, n, "saved_model") for n in variants)
    _run(["-m", "msd_tf.evaluate", "--flagfile=flags/mnist/eval.cfg", "--suite=strong",
          "--restarts=1", "--nocurves", f"--eval_batch_size={_NUM.value}",
          f"--attacks={','.join(_ATTACKS.value)}",
          f"--eval_split={_TUNE_SPLIT.value}", f"--num_examples={_NUM.value}",
          f"--models={models}", f"--cache_dir={os.path.join(_OUTPUT_DIR.value, 'cache')}",
          f"--output_dir={os.path.join(out, 'eval')}",
          *([f"--data_dir={data_dir}"] if data_dir else [])],
         os.path.join(out, "logs", "eval.log"))
    with open(os.path.join(out, "eval", "results.json")) as f:
        results = json.load(f)["models"]
    rows = []
    for name, extra in variants.items():
        s = results[name]
        with open(os.path.join(out, name, "summary.json")) as f:
            passes = json.load(f)["compute"]["passes"]
        rows.append((s["all"], name, " ".join(extra), s, passes))
    lines = [f"# Tuning {method.label} on {_TUNE_SPLIT.value} ({_NUM.value} digits; "
             f"attacks: {', '.join(_ATTACKS.value)})", "",
             "| variant | flags | epochs | clean | l_inf | l_2 | l_1 | union | passes (M) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for _, name, extra, s, passes in sorted(rows, key=lambda r: -r[0]):
        lines.append(f"| {name} | {extra or '-'} | {epochs[name]} | {100 * s['clean']:.1f} | "
                     + " | ".join(
            f"{100 * s['norms'][n]['acc']:.1f}" if n in s["norms"] else "-"
            for n in ("linf", "l2", "l1"))
            + f" | {100 * s['all']:.1f} | {passes / 1e6:.2f} |")
    with open(os.path.join(out, "tune.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
