"""Runs a suite on one model with a resumable, content-keyed on-disk cache.

Each (model, attack, batch) result is written, as soon as it is done (a temporary
file, then a rename), to

  <output_dir>/cache/<model name>/<attack>-<key>/batch_<i>-<batch hash>.npz

where `key` is a fingerprint of the model's content, the attack's settings, the batch
size, the seed and the code version (the msd_tf sources and the TensorFlow, foolbox
and NumPy versions), and `batch hash` a fingerprint of the batch's images and labels.
A result is reused only when all of these match: a retrained model, other data,
other settings or other code recompute, whatever the folder names. A killed
evaluation started again recomputes only what is missing.

Seeds: every random source (our stateless attacks, TensorFlow's and NumPy's global
generators that foolbox draws from) is seeded per (model content, attack, batch,
restart) from `seed`, so identical commands give identical results, and a resumed
evaluation gives exactly the uninterrupted one.
"""

import dataclasses
import hashlib
import os
import time

import numpy as np

from msd_tf import fingerprints
from msd_tf.evaluation import checks, profiling, suite

GRID_EXAMPLES = 6  # adversarial images kept (from batch 0) for the example grid


def code_version() -> dict:
    """What the cache key holds of the code: our sources and the attack libraries."""
    import foolbox
    import tensorflow as tf

    import msd_tf

    return {"msd_tf": msd_tf.__version__, "sources": fingerprints.of_code(),
            "tensorflow": tf.__version__, "foolbox": foolbox.__version__,
            "numpy": np.__version__}


def attack_seed(seed: int, weights_fingerprint: str, attack: str, batch: int) -> int:
    """The seed of one (model, attack, batch): a 31-bit integer derived from all four. The
    model enters by its weights' values (`fingerprints.of_weights`), not its files, so that
    the same weights saved twice, or as a SavedModel and a checkpoint, meet the same
    random starts."""
    text = f"{seed}|{weights_fingerprint}|{attack}|{batch}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:4], "big") & 0x7FFFFFFF


def cache_folder(cache_dir: str, model_name: str, model_fingerprint: str,
                 spec: suite.AttackSpec, *, batch_size: int, seed: int, code: dict,
                 earlier: tuple[str, ...] = (), jit_compile: bool = False) -> str:
    """The folder of one (model, attack) result; `earlier` names the folders of the
    results an `only_robust` attack depends on (which examples it attacks)."""
    key = fingerprints.of_json({"model": model_fingerprint, "spec": dataclasses.asdict(spec),
                                "batch_size": batch_size, "seed": seed, "code": code,
                                "earlier": [os.path.basename(e) for e in earlier],
                                **({"jit_compile": True} if jit_compile else {})})
    return os.path.join(cache_dir, model_name, f"{spec.name}-{key[:16]}")


def _save(path: str, **arrays) -> None:
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def example_keys(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A content key per example (its image and label), 16 hex digits each."""
    return np.array([fingerprints.of_arrays(x[i], y[i:i + 1])[:16] for i in range(len(x))])


def run_suite(model_name: str, model_fingerprint: str, logits_fn, x: np.ndarray,
              y: np.ndarray, specs: list[suite.AttackSpec], *, output_dir: str,
              batch_size: int = 100, seed: int = 0, verbose: bool = True, on_compute=None,
              code: dict | None = None, cache_dir: str | None = None,
              jit_compile: bool = False, prior_broken: dict | None = None,
              seed_key: str | None = None):
    """Evaluates one model; returns `(clean [N] bool, records, grid)`.

    Each attack runs on the correctly classified examples of every batch (an
    `only_robust` attack: on those that every earlier attack of its norm failed to
    break, and, with `prior_broken` (norm -> `[N]` bool from an earlier evaluation of
    the same examples), on those it left robust); its claims go through
    `checks.verify`. `cache_dir` defaults to
    `<output_dir>/cache` (evaluations may share one).
    `records[name]` = {"spec", "sound", "norms", "rejected", "profile"}, where
    "profile" = {"seconds", "attacked", "forward", "backward", "cached"}: the attack's
    wall-clock seconds, examples attacked and forward / backward example-passes
    (`profiling.CountingLogits`; stored with each batch, so a resumed evaluation keeps
    the figures of the run that computed it; "cached": every batch came from the cache);
    `grid[name]` = (adversarial images, sound, norms) of the first `GRID_EXAMPLES`.
    `on_compute(attack_name, batch_index)` is called for every batch actually computed.
    `seed_key` (default: `model_fingerprint`) is what the attack seeds derive from: the
    weights' fingerprint (`LoadedModel.weights_fingerprint`); the cache stays keyed by
    `model_fingerprint`, the files, which fix the weights.
    """
    import keras

    code = code or code_version()
    counted = profiling.CountingLogits(logits_fn)  # what the attacks call
    clean = checks.predict(logits_fn, x) == y
    n = len(x)
    batches = [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    batch_keys = [fingerprints.of_arrays(x[lo:hi], y[lo:hi])[:16] for lo, hi in batches]
    records, grid, folders = {}, {}, {}
    cache_dir = cache_dir or os.path.join(output_dir, "cache")
    for a_idx, spec in enumerate(specs):
        before = [s for s in specs[:a_idx] if s.norm == spec.norm]
        broken_before = np.zeros(n, bool)
        earlier = ()
        if spec.only_robust:
            for s in before:
                broken_before |= checks.broken_at(records[s.name]["sound"],
                                                  records[s.name]["norms"], spec.eps)
            earlier = tuple(folders[s.name] for s in before)
            if prior_broken is not None and spec.norm in prior_broken:
                broken_before |= prior_broken[spec.norm]
                earlier += ("prior-" + fingerprints.of_arrays(prior_broken[spec.norm])[:16],)
        folder = cache_folder(cache_dir, model_name, model_fingerprint, spec,
                              batch_size=batch_size, seed=seed, code=code,
                              earlier=earlier, jit_compile=jit_compile)
        folders[spec.name] = folder
        os.makedirs(folder, exist_ok=True)
        parts, cached = [], True
        if verbose:
            print(f"[{model_name}] attack {a_idx + 1}/{len(specs)}: {spec.label()}, "
                  f"{spec.restarts} restart(s), {len(batches)} batch(es)", flush=True)
            bar = keras.utils.Progbar(len(batches), unit_name="batch")
        for b, (lo, hi) in enumerate(batches):
            path = os.path.join(folder, f"batch_{b}-{batch_keys[b]}.npz")
            if not os.path.exists(path):
                cached = False
                if on_compute:
                    on_compute(spec.name, b)
                xb, yb = x[lo:hi], y[lo:hi]
                todo = clean[lo:hi] & ~broken_before[lo:hi]
                x_adv = xb.copy()
                found = np.zeros(hi - lo, bool)
                start, (fwd, bwd) = time.perf_counter(), counted.counts()
                if todo.any():
                    xa, fa = suite.run_attack(
                        spec, counted, xb[todo], yb[todo],
                        seed=attack_seed(seed, seed_key or model_fingerprint, spec.name, b),
                        jit_compile=jit_compile)
                    x_adv[todo], found[todo] = xa, fa
                fwd_end, bwd_end = counted.counts()
                cost = [time.perf_counter() - start, todo.sum(), fwd_end - fwd, bwd_end - bwd]
                sound, norms, rejected = checks.verify(logits_fn, xb, yb, x_adv, found,
                                                       norm=spec.norm)
                _save(path, sound=sound, norms=norms, rejected=rejected,
                      head=x_adv[:GRID_EXAMPLES] if b == 0 else x_adv[:0],
                      profile=np.array(cost, np.float64))
            with np.load(path) as f:
                parts.append({k: f[k] for k in f.files})
            if verbose:
                bar.update(b + 1)
        cost = np.sum([p["profile"] for p in parts], axis=0)
        records[spec.name] = {
            "spec": spec,
            "sound": np.concatenate([p["sound"] for p in parts]),
            "norms": np.concatenate([p["norms"] for p in parts]),
            "rejected": np.concatenate([p["rejected"] for p in parts]),
            "profile": {"seconds": round(float(cost[0]), 2), "attacked": int(cost[1]),
                        "forward": int(cost[2]), "backward": int(cost[3]),
                        "cached": cached},
        }
        head = parts[0]["head"]
        grid[spec.name] = (head, records[spec.name]["sound"][:len(head)],
                           records[spec.name]["norms"][:len(head)])
    return clean, records, grid
