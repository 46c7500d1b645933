"""Aggregation (PAPER_NOTES section 7): from per-attack results to robust accuracy per
attack, per threat model and over all attacks; pure (no files; `report.py` writes them).

An example is robust for a threat model when it is correctly classified and every
attack of that model fails on it; "all attacks" requires every attack of every
model to fail (a per-example worst case, not an average of rows). "Broken at the
radius" is `checks.broken_at` everywhere.
"""

import numpy as np

from msd_tf.evaluation.checks import broken_at, within
from msd_tf.threats import NORMS


def aggregate(clean: np.ndarray, records: dict) -> dict:
    """Per-attack, per-threat-model and all-attacks robust accuracy.

    Args:
      clean: `[N]` bool, correctly classified without attack.
      records: attack name -> `records.AttackRecord`, in suite order.

    Returns:
      A JSON-ready dict: clean accuracy, per attack {label, norm, eps, acc, rejected,
      minimizes, only_robust}, per norm {eps, acc, attacks}, `all` and the names that
      ran; with added (strong-suite) attacks beside the paper's also `paper_only` (norm or
      "all" -> accuracy against the paper's attacks alone) and `broken_only_by_added`.
    """
    n = len(clean)
    out = {"n": n, "clean": float(clean.mean()) if n else 0.0, "attacks": {}, "norms": {},
           "ran": list(records)}
    any_broken = np.zeros(n, bool)
    per_norm = {}
    for name, rec in records.items():
        spec, b = rec.spec, rec.broken()
        per_norm.setdefault(spec.norm, [np.zeros(n, bool), spec.eps, []])
        # An attack run only on the examples its norm's earlier attacks left robust
        # (AutoAttack's protocol) reports the accuracy against it and those before it.
        row = (b | per_norm[spec.norm][0]) if spec.only_robust else b
        out["attacks"][name] = {
            "label": spec.label(), "norm": spec.norm, "eps": spec.eps,
            "acc": float((clean & ~row).mean()) if n else 0.0,
            "rejected": int(np.sum(rec.rejected)), "minimizes": spec.minimizes,
            "only_robust": spec.only_robust}
        per_norm[spec.norm][0] |= b
        per_norm[spec.norm][2].append(name)
        any_broken |= b
    for norm in NORMS:
        if norm in per_norm:
            b, eps, names = per_norm[norm]
            out["norms"][norm] = {"eps": eps, "acc": float((clean & ~b).mean()) if n else 0.0,
                                  "attacks": names}
    out["all"] = float((clean & ~any_broken).mean()) if n else 0.0
    # Here, not at the top: the suite imports the attacks (TensorFlow), which the
    # comparison of finished evaluations (msd_tf.compare) does not need.
    from msd_tf.evaluation.suite import ADDED_KINDS

    added = [name for name, rec in records.items() if rec.spec.kind in ADDED_KINDS]
    if added and len(added) < len(records):  # both kinds ran (not --suite=autoattack alone)
        # How much the paper's protocol overestimates robustness: examples that every
        # paper attack fails on but an added attack (APGD, Square, Sparse-RS) breaks;
        # and the accuracy against the paper's attacks alone.
        out["broken_only_by_added"], out["paper_only"] = {}, {}
        for norm in list(out["norms"]) + ["all"]:
            sel = [nm for nm, rec in records.items() if norm in ("all", rec.spec.norm)]
            paper = np.zeros(n, bool)
            extra = np.zeros(n, bool)
            for nm in sel:
                (extra if nm in added else paper).__ior__(records[nm].broken())
            out["broken_only_by_added"][norm] = float((clean & ~paper & extra).mean()) \
                if n else 0.0
            out["paper_only"][norm] = float((clean & ~paper).mean()) if n else 0.0
    return out


def accuracy_at_radii(clean: np.ndarray, records: dict, norm: str, radii, *,
                      minimization_only: bool = False) -> np.ndarray:
    """Robust accuracy against the attacks of `norm` at each radius, from recorded norms.

    An example counts as broken at radius r if an attack of that norm found a sound
    adversarial example of norm <= r. A fixed-radius attack searched at its own radius
    only, so at other radii its norms are no measurement: `minimization_only=True`
    uses the minimization attacks alone (a measurement at every radius).
    """
    norms = [rec.norms for rec in records.values() if rec.spec.norm == norm
             and (rec.spec.minimizes or not minimization_only)]
    if not norms:
        return np.full(len(radii), np.nan)
    smallest = np.min(np.stack(norms), axis=0)
    return np.array([np.mean(clean & ~within(smallest, r)) for r in radii])


def broken_in(per_example: dict, spec: dict) -> np.ndarray:
    """Examples the attack `spec` (a dict with name and eps: an entry of results.json's
    "suite") broke at its radius, from a per_example file's arrays."""
    return broken_at(per_example[f"{spec['name']}/sound"],
                     per_example[f"{spec['name']}/norm"], spec["eps"])


def broken_per_norm(per_example: dict, specs: list[dict]) -> dict:
    """norm -> `[N]` bool: examples some attack of `specs` (dicts with name, norm, eps:
    a results.json "suite") broke at its radius, from a per_example file's arrays."""
    out = {}
    for s in specs:
        if f"{s['name']}/sound" not in per_example:
            continue
        b = broken_in(per_example, s)
        out[s["norm"]] = out.get(s["norm"], np.zeros(len(b), bool)) | b
    return out
