"""Runs a suite on one or more models with a resumable on-disk cache.

Each (model, attack, batch) result is written to
`<output_dir>/cache/<model>/<attack>-<hash>/batch_<i>.npz` as soon as it is done
(atomically: a temporary file, then a rename). A killed evaluation started again
recomputes only what is missing; the hash covers the attack's settings, the batch
size and the seed, so changed settings never reuse stale results.
"""

import dataclasses
import hashlib
import json
import os

import numpy as np

from msd_tf.evaluation import checks, suite

GRID_EXAMPLES = 6  # adversarial images kept (from batch 0) for the example grid


def _spec_hash(spec: suite.AttackSpec, batch_size: int, seed: int) -> str:
    text = json.dumps([dataclasses.asdict(spec), batch_size, seed], sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def _save(path: str, **arrays) -> None:
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def run_suite(model_name: str, logits_fn, x: np.ndarray, y: np.ndarray,
              specs: list[suite.AttackSpec], *, output_dir: str, batch_size: int = 100,
              seed: int = 0, verbose: bool = True, on_compute=None):
    """Evaluates one model; returns `(clean [N] bool, records, grid)`.

    Each attack runs on the correctly classified examples of every batch; its claims go
    through `checks.verify`. `records[name]` = {"spec", "sound", "norms", "rejected"};
    `grid[name]` = (adversarial images, sound, norms) of the first `GRID_EXAMPLES`.
    `on_compute(attack_name, batch_index)` is called for every batch actually computed.
    """
    import keras

    clean = checks.predict(logits_fn, x) == y
    n = len(x)
    batches = [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    records, grid = {}, {}
    for a_idx, spec in enumerate(specs):
        folder = os.path.join(output_dir, "cache", model_name,
                              f"{spec.name}-{_spec_hash(spec, batch_size, seed)}")
        os.makedirs(folder, exist_ok=True)
        parts = []
        if verbose:
            print(f"[{model_name}] attack {a_idx + 1}/{len(specs)}: {spec.label()}, "
                  f"{spec.restarts} restart(s), {len(batches)} batch(es)", flush=True)
            bar = keras.utils.Progbar(len(batches), unit_name="batch")
        for b, (lo, hi) in enumerate(batches):
            path = os.path.join(folder, f"batch_{b}.npz")
            if not os.path.exists(path):
                if on_compute:
                    on_compute(spec.name, b)
                xb, yb = x[lo:hi], y[lo:hi]
                todo = clean[lo:hi]
                x_adv = xb.copy()
                found = np.zeros(hi - lo, bool)
                if todo.any():
                    xa, fa = suite.run_attack(spec, logits_fn, xb[todo], yb[todo],
                                              seed=seed + 7919 * b)
                    x_adv[todo], found[todo] = xa, fa
                sound, norms, rejected = checks.verify(logits_fn, xb, yb, x_adv, found,
                                                       norm=spec.norm, eps=spec.eps)
                _save(path, sound=sound, norms=norms, rejected=rejected,
                      head=x_adv[:GRID_EXAMPLES] if b == 0 else x_adv[:0])
            with np.load(path) as f:
                parts.append({k: f[k] for k in f.files})
            if verbose:
                bar.update(b + 1)
        records[spec.name] = {
            "spec": spec,
            "sound": np.concatenate([p["sound"] for p in parts]),
            "norms": np.concatenate([p["norms"] for p in parts]),
            "rejected": np.concatenate([p["rejected"] for p in parts]),
        }
        head = parts[0]["head"]
        grid[spec.name] = (head, records[spec.name]["sound"][:len(head)],
                           records[spec.name]["norms"][:len(head)])
    return clean, records, grid
