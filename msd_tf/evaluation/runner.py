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
from msd_tf.evaluation import adapters, checks, profiling, suite
from msd_tf.evaluation.records import AttackRecord, EvalConfig

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


def _broken_before(spec: suite.AttackSpec, before: list, records: dict, folders: dict,
                   prior_broken: dict | None, n: int) -> tuple[np.ndarray, tuple]:
    """Select: which examples an `only_robust` attack skips (those an earlier attack of
    its norm, or the pruning evaluation, broke at its radius), and the cache identity of
    what decided it (the earlier attacks' folders, the pruning flags' fingerprint)."""
    broken = np.zeros(n, bool)
    if not spec.only_robust:
        return broken, ()
    for s in before:
        broken |= checks.broken_at(records[s.name].sound, records[s.name].norms, spec.eps)
    earlier = tuple(folders[s.name] for s in before)
    if prior_broken is not None and spec.norm in prior_broken:
        broken |= prior_broken[spec.norm]
        earlier += ("prior-" + fingerprints.of_arrays(prior_broken[spec.norm])[:16],)
    return broken, earlier


def _run_batch(spec: suite.AttackSpec, counted, logits_fn, xb, yb, todo, *, seed: int,
               jit_compile: bool, keep: int) -> dict:
    """Run: the attack on the `todo` examples of one batch, its claims verified
    (`checks.verify`); the arrays of one cache file."""
    x_adv, found = xb.copy(), np.zeros(len(xb), bool)
    start, (fwd, bwd) = time.perf_counter(), counted.counts()
    if todo.any():
        x_adv[todo], found[todo] = adapters.run_attack(spec, counted, xb[todo], yb[todo],
                                                    seed=seed, jit_compile=jit_compile)
    fwd_end, bwd_end = counted.counts()
    cost = [time.perf_counter() - start, todo.sum(), fwd_end - fwd, bwd_end - bwd]
    sound, norms, rejected = checks.verify(logits_fn, xb, yb, x_adv, found, norm=spec.norm)
    return {"sound": sound, "norms": norms, "rejected": rejected, "head": x_adv[:keep],
            "profile": np.array(cost, np.float64)}


def _record(spec: suite.AttackSpec, parts: list, cached: bool) -> AttackRecord:
    cost = np.sum([p["profile"] for p in parts], axis=0)
    return AttackRecord(
        spec=spec, sound=np.concatenate([p["sound"] for p in parts]),
        norms=np.concatenate([p["norms"] for p in parts]),
        rejected=np.concatenate([p["rejected"] for p in parts]),
        profile={"seconds": round(float(cost[0]), 2), "attacked": int(cost[1]),
                 "forward": int(cost[2]), "backward": int(cost[3]), "cached": cached})


def run_suite(model_name: str, model_fingerprint: str, logits_fn, x: np.ndarray,
              y: np.ndarray, config: EvalConfig, *, code: dict | None = None,
              prior_broken: dict | None = None, seed_key: str | None = None,
              on_compute=None) -> tuple[np.ndarray, dict, dict]:
    """Evaluates one model with `config.specs`; returns `(clean [N] bool, records, grid)`.

    Per attack: select the examples (the correctly classified ones; an `only_robust`
    attack: those every earlier attack of its norm, and `prior_broken` (norm -> `[N]`
    bool from an earlier evaluation of the same examples), left robust), then per batch
    load its cache file or run it (`_run_batch`). `records[name]` is an `AttackRecord`;
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
    n, size = len(x), config.batch_size
    batches = [(i, min(i + size, n)) for i in range(0, n, size)]
    batch_keys = [fingerprints.of_arrays(x[lo:hi], y[lo:hi])[:16] for lo, hi in batches]
    records, grid, folders = {}, {}, {}
    cache_dir = config.cache_dir or os.path.join(config.output_dir, "cache")
    specs = config.specs
    for a_idx, spec in enumerate(specs):
        before = [s for s in specs[:a_idx] if s.norm == spec.norm]
        broken_before, earlier = _broken_before(spec, before, records, folders,
                                                prior_broken, n)
        folder = folders[spec.name] = cache_folder(
            cache_dir, model_name, model_fingerprint, spec, batch_size=size,
            seed=config.seed, code=code, earlier=earlier, jit_compile=config.jit_compile)
        os.makedirs(folder, exist_ok=True)
        parts, cached = [], True
        if config.verbose:
            print(f"[{model_name}] attack {a_idx + 1}/{len(specs)}: {spec.label()}, "
                  f"{spec.restarts} restart(s), {len(batches)} batch(es)", flush=True)
            bar = keras.utils.Progbar(len(batches), unit_name="batch")
        for b, (lo, hi) in enumerate(batches):
            path = os.path.join(folder, f"batch_{b}-{batch_keys[b]}.npz")
            if not os.path.exists(path):
                cached = False
                if on_compute:
                    on_compute(spec.name, b)
                seed = attack_seed(config.seed, seed_key or model_fingerprint, spec.name, b)
                _save(path, **_run_batch(spec, counted, logits_fn, x[lo:hi], y[lo:hi],
                                         clean[lo:hi] & ~broken_before[lo:hi], seed=seed,
                                         jit_compile=config.jit_compile,
                                         keep=GRID_EXAMPLES if b == 0 else 0))
            with np.load(path) as f:
                parts.append({k: f[k] for k in f.files})
            if config.verbose:
                bar.update(b + 1)
        records[spec.name] = _record(spec, parts, cached)
        head = parts[0]["head"]
        grid[spec.name] = (head, records[spec.name].sound[:len(head)],
                           records[spec.name].norms[:len(head)])
    return clean, records, grid
