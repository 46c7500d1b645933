"""Runs a suite on one model with a resumable, content-keyed on-disk cache.

The examples an attack is run on (those every earlier attack of its norm left robust)
are packed into full batches, as AutoAttack does. Each (model, attack, batch) result is
written, as soon as it is done (a temporary file, then a rename), to

  <output_dir>/cache/<model name>/<attack>-<key>/batch_<i>-<batch hash>.npz

where `key` is a fingerprint of the model's content, the attack's settings, the batch
size, the seed and the code version (the msd_tf sources and the TensorFlow, foolbox
and NumPy versions), and `batch hash` a fingerprint of the packed batch's images and labels.
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

GRID_EXAMPLES = 6  # adversarial images kept (of the first examples) for the example grid


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


def _run_batch(spec: suite.AttackSpec, counted, logits_fn, xb, yb, *, seed: int,
               jit_compile: bool) -> dict:
    """Run: the attack on one packed batch (every example in it is attacked), its claims
    verified (`checks.verify`); the arrays of one cache file."""
    start, (fwd, bwd) = time.perf_counter(), counted.counts()
    x_adv, found = adapters.run_attack(spec, counted, xb, yb, seed=seed,
                                       jit_compile=jit_compile)
    x_adv, found = np.asarray(x_adv, np.float32), np.asarray(found, bool)
    fwd_end, bwd_end = counted.counts()
    cost = [time.perf_counter() - start, len(xb), fwd_end - fwd, bwd_end - bwd]
    sound, norms, rejected = checks.verify(logits_fn, xb, yb, x_adv, found, norm=spec.norm)
    return {"sound": sound, "norms": norms, "rejected": rejected, "adversarial": x_adv,
            "profile": np.array(cost, np.float64)}


def pack(todo: np.ndarray, size: int) -> list[np.ndarray]:
    """The indices of the examples to attack, in batches of `size` (the last one
    shorter): the examples every earlier attack left robust are packed into full
    batches across the data set, as AutoAttack does, rather than attacked in the
    windows of `size` they sit in."""
    idx = np.flatnonzero(todo)
    return [idx[i:i + size] for i in range(0, len(idx), size)]


def _record(spec: suite.AttackSpec, n: int, packed: list, parts: list,
            cached: bool) -> AttackRecord:
    """The attack's per-example record over all `n` examples (an example not attacked:
    not sound, norm inf, not rejected) and its summed profile."""
    sound, norms, rejected = np.zeros(n, bool), np.full(n, np.inf), np.zeros(n, bool)
    for idx, part in zip(packed, parts):
        sound[idx], norms[idx], rejected[idx] = part["sound"], part["norms"], part["rejected"]
    cost = np.sum([p["profile"] for p in parts], axis=0) if parts else np.zeros(4)
    return AttackRecord(
        spec=spec, sound=sound, norms=norms, rejected=rejected,
        profile={"seconds": round(float(cost[0]), 2), "attacked": int(cost[1]),
                 "forward": int(cost[2]), "backward": int(cost[3]), "cached": cached})


def _grid(x: np.ndarray, packed: list, parts: list, record: AttackRecord) -> tuple:
    """(adversarial images, sound, norms) of the first `GRID_EXAMPLES` examples (an
    example not attacked shows its clean image)."""
    k = min(GRID_EXAMPLES, len(x))
    head = x[:k].copy()
    if packed:
        first = packed[0][packed[0] < k]  # sorted: the first examples are in batch 0
        head[first] = parts[0]["head"][:len(first)]
    return head, record.sound[:k], record.norms[:k]


def run_suite(model_name: str, model_fingerprint: str, logits_fn, x: np.ndarray,
              y: np.ndarray, config: EvalConfig, *, code: dict | None = None,
              prior_broken: dict | None = None, seed_key: str | None = None,
              on_compute=None) -> tuple[np.ndarray, dict, dict]:
    """Evaluates one model with `config.specs`; returns `(clean [N] bool, records, grid)`.

    Per attack: select the examples (the correctly classified ones; an `only_robust`
    attack: those every earlier attack of its norm, and `prior_broken` (norm -> `[N]`
    bool from an earlier evaluation of the same examples), left robust), pack them into
    batches of `config.batch_size` (`pack`), then per batch load its cache file (keyed
    by the batch's examples) or run it (`_run_batch`). `records[name]` is an
    `AttackRecord`; `grid[name]` = (adversarial images, sound, norms) of the first
    `GRID_EXAMPLES`. `on_compute(attack_name, batch_index)` is called for every batch
    actually computed. `seed_key` (default: `model_fingerprint`) is what the attack
    seeds derive from: the weights' fingerprint (`LoadedModel.weights_fingerprint`); the
    cache stays keyed by `model_fingerprint`, the files, which fix the weights.
    """
    code = code or code_version()
    counted = profiling.CountingLogits(logits_fn)  # what the attacks call
    clean = checks.predict(logits_fn, x) == y
    records, grid, folders = {}, {}, {}
    cache_dir = config.cache_dir or os.path.join(config.output_dir, "cache")
    specs = config.specs
    for a_idx, spec in enumerate(specs):
        before = [s for s in specs[:a_idx] if s.norm == spec.norm]
        broken_before, earlier = _broken_before(spec, before, records, folders,
                                                prior_broken, len(x))
        folder = folders[spec.name] = cache_folder(
            cache_dir, model_name, model_fingerprint, spec, batch_size=config.batch_size,
            seed=config.seed, code=code, earlier=earlier, jit_compile=config.jit_compile)
        os.makedirs(folder, exist_ok=True)
        packed = pack(clean & ~broken_before, config.batch_size)
        if config.verbose:
            print(f"[{model_name}] attack {a_idx + 1}/{len(specs)}: {spec.label()}, "
                  f"{spec.restarts} restart(s), {len(packed)} batch(es) of "
                  f"{sum(map(len, packed))} examples", flush=True)
        parts, cached = _attack_batches(spec, packed, folder, counted, logits_fn, x, y,
                                        config, seed_key or model_fingerprint, on_compute)
        records[spec.name] = _record(spec, len(x), packed, parts, cached)
        grid[spec.name] = _grid(x, packed, parts, records[spec.name])
    return clean, records, grid


def _attack_batches(spec, packed, folder, counted, logits_fn, x, y, config, seed_key,
                    on_compute) -> tuple[list, bool]:
    """Each packed batch's cache file, computed where missing; (parts, all cached)."""
    import keras

    parts, cached = [], bool(packed)
    bar = keras.utils.Progbar(len(packed), unit_name="batch") if config.verbose else None
    for b, idx in enumerate(packed):
        path = os.path.join(folder, f"batch_{b}-{fingerprints.of_arrays(x[idx], y[idx])[:16]}"
                                    ".npz")
        if not os.path.exists(path):
            cached = False
            if on_compute:
                on_compute(spec.name, b)
            seed = attack_seed(config.seed, seed_key, spec.name, b)
            part = _run_batch(spec, counted, logits_fn, x[idx], y[idx], seed=seed,
                              jit_compile=config.jit_compile)
            adversarial = part.pop("adversarial")
            _save(path, head=adversarial[:int(np.sum(idx < GRID_EXAMPLES))], **part)
        with np.load(path) as f:
            parts.append({k: f[k] for k in f.files})
        if bar:
            bar.update(b + 1)
    return parts, cached
