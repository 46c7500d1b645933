"""How each attack kind runs on a batch: our attacks (`msd_tf.attacks`) and foolbox's,
behind one call, `run_attack(spec, logits_fn, x, y, seed=) -> (x_adv, found)`.

`KINDS` maps a kind name to a `Kind`: its label, its runner, whether it minimizes the
perturbation, and the options an `AttackSpec` of the kind may set. What a suite runs (the
specs, their radii, budgets and order) is `suite.py`; `checks.verify` decides afterwards
whether a claimed example is adversarial.

Restarts, one rule per type: a fixed-radius attack counts an example broken if any run
breaks it (ours keep the first fooling delta, else the highest loss, inside the attack;
foolbox's keep the first success); a minimization attack keeps per example the smallest
norm any run found.
"""

import contextlib
import dataclasses
from typing import Callable

import numpy as np
import tensorflow as tf

from msd_tf import seeding
from msd_tf import threats as threats_lib
from msd_tf.attacks import ATTACKS
from msd_tf.attacks.losses import cross_entropy, margin_loss
from msd_tf.evaluation import foolbox_compat
from msd_tf.evaluation.checks import lp_norms, predict

# Option values that are names: the loss our PGD and SLIDE ascend.
_LOSS_FNS = {"ce": cross_entropy, "margin": margin_loss}
OPTION_CHOICES = {"loss": tuple(_LOSS_FNS)}



def _fb_model(logits_fn):
    fb = foolbox_compat.get_foolbox()
    return fb.TensorFlowModel(logits_fn, bounds=(0.0, 1.0))


def _seed_globals(seed: int, restart: int) -> None:
    """Seeds the global generators foolbox draws from (TensorFlow's: `ep.uniform`,
    `ep.normal`; NumPy's: Pointwise's permutations) for one restart."""
    s = seeding.pack(seed, restart) % (2**31 - 1)
    tf.random.set_seed(s)
    np.random.seed(s)


@contextlib.contextmanager
def _numpy_state_kept():
    """Leaves NumPy's global generator as the caller had it."""
    state = np.random.get_state()
    try:
        yield
    finally:
        np.random.set_state(state)


def _ours(name: str):
    """Runs our attack `ATTACKS[name]` at the spec's radius and budget. APGD-CE's
    restarts and APGD-T's target classes (`spec.restarts` of them) do the work of
    running one after the other, each only on the examples the earlier ones left
    unbroken (AutoAttack's order): in one batch of runs x examples where an example's
    runs stop once one fooled it (`apgd._stacked_runs`), or, under XLA, one call per
    run. FAB-T's `spec.restarts` are its target classes too, one run each (AutoAttack's
    standard version), in one call that runs each on the examples still unbroken.

    The kind's options (`Kind.options`): `loss` (the loss PGD or SLIDE ascends), `q`
    (SLIDE's percentile), `random_start` (True: every run starts at a random point of
    the ball, the first too; None: every run when there are several, else none)."""
    attack = ATTACKS[name]

    def settings(spec):
        takes = KINDS[spec.kind].options
        out = {"loss_fn": _LOSS_FNS[spec.option("loss")]} if "loss" in takes else {}
        return dict(out, q=float(spec.option("q"))) if "q" in takes else out

    def run(spec, logits_fn, x, y, seed, jit_compile=False):
        if name == "fab_t":
            x_adv = attack.fn(logits_fn, x, y, spec.threat(1), seed=seed,
                              n_targets=spec.restarts, jit_compile=jit_compile).numpy()
            return x_adv, predict(logits_fn, x_adv) != y
        if name not in ("apgd_ce", "apgd_t"):
            budget = {"n_queries": spec.steps or threats_lib.QUERIES} if attack.queries else {}
            x_adv = attack.fn(logits_fn, x, y, spec.threat(spec.restarts), seed=seed,
                              jit_compile=jit_compile, **budget, **settings(spec)).numpy()
            return x_adv, predict(logits_fn, x_adv) != y
        if not jit_compile:  # one call; the runs stop per example once one fooled it
            if name == "apgd_t":
                out = attack.fn(logits_fn, x, y, spec.threat(1), seed=seed,
                                n_targets=spec.restarts)
            else:
                out = attack.fn(logits_fn, x, y, spec.threat(spec.restarts),
                                seed=seed)
            out = out.numpy()
            return out, predict(logits_fn, out) != y
        # XLA needs static shapes: one call per run on the examples still unbroken.
        threat = spec.threat(1)
        x_adv, found = x.copy(), np.zeros(len(x), bool)
        for r in range(spec.restarts):
            todo = np.flatnonzero(~found)
            if not len(todo):
                break
            if name == "apgd_t":  # the r-th most likely wrong class
                out = attack.fn(logits_fn, x[todo], y[todo], threat, seed=seed, n_targets=1,
                                target_offset=r, jit_compile=jit_compile)
            else:
                out = attack.fn(logits_fn, x[todo], y[todo], threat,
                                seed=np.array([seed, r], np.int64), jit_compile=jit_compile)
            out = out.numpy()
            fooled = predict(logits_fn, out) != y[todo]
            x_adv[todo[fooled]], found[todo[fooled]] = out[fooled], True
        return x_adv, found

    return run


def _from_salt_and_pepper(attack, fmodel, x, y, spec):
    """Boundary and Pointwise need an adversarial starting point; foolbox aborts the
    whole batch when its initialization fails on any input. We start them from a
    Salt & Pepper run and attack only the examples it fooled (others: not found)."""
    fb = foolbox_compat.get_foolbox()
    init = fb.attacks.SaltAndPepperNoiseAttack(steps=min(spec.steps or 1000, 1000))
    _, start, ok = init(fmodel, tf.constant(x), tf.constant(y), epsilons=None)
    ok = np.array(ok, bool)  # a writable copy (asarray of a TF tensor is read-only)
    x_r = np.asarray(start, np.float32).copy()
    if ok.any():
        _, refined, success = attack(fmodel, tf.constant(x[ok]), tf.constant(y[ok]),
                                     epsilons=None, starting_points=tf.constant(x_r[ok]))
        x_r[ok] = np.asarray(refined, np.float32)
        ok[ok] = np.asarray(success, bool)
    return x_r, ok


def _foolbox(make: Callable, *, minimizes: bool, needs_start: bool = False):
    """Runs a foolbox attack `make(fb, spec, restart)` `spec.restarts` times, seeding the
    global generators before each; a minimization attack keeps per example the
    smallest norm found, a fixed-radius one the first success."""

    def run(spec, logits_fn, x, y, seed, jit_compile=False):
        del jit_compile  # foolbox runs its own eager code
        fb = foolbox_compat.get_foolbox()
        fmodel = _fb_model(logits_fn)
        best = x.copy()
        best_found = np.zeros(len(x), bool)
        best_norm = np.full(len(x), np.inf)
        for r in range(spec.restarts):
            _seed_globals(seed, r)
            attack = make(fb, spec, r)
            if needs_start:
                x_r, ok = _from_salt_and_pepper(attack, fmodel, x, y, spec)
            else:
                _, clipped, success = attack(fmodel, tf.constant(x), tf.constant(y),
                                             epsilons=None if minimizes else spec.eps)
                x_r, ok = np.asarray(clipped, np.float32), np.array(success, bool)
            if minimizes:
                n = np.where(ok, lp_norms(x_r, x, spec.norm), np.inf)
                take = ok & (n < best_norm)
                best_norm = np.where(take, n, best_norm)
            else:
                take = ok & ~best_found
            best[take] = x_r[take]
            best_found |= ok
            if not minimizes and best_found.all():
                break
        return best, best_found

    return run


def _gaussian(spec, logits_fn, x, y, seed, jit_compile=False):
    """Gaussian noise at growing l_2 radii (`steps` radii up to 4 eps); keeps the
    smallest radius that fools. Each radius is tried `restarts` times."""
    fb = foolbox_compat.get_foolbox()
    attack = fb.attacks.L2RepeatedAdditiveGaussianNoiseAttack(repeats=spec.restarts)
    radii = np.linspace(4 * spec.eps / (spec.steps or 100), 4 * spec.eps, spec.steps or 100)
    _seed_globals(seed, 0)
    _, clipped, success = attack(_fb_model(logits_fn), tf.constant(x), tf.constant(y),
                                 epsilons=list(radii))
    success = np.asarray(success)  # [radii, N]
    first = np.where(success.any(0), success.argmax(0), -1)
    clipped = np.stack([np.asarray(c) for c in clipped])  # [radii, N, ...]
    found = first >= 0
    x_adv = x.copy()
    x_adv[found] = clipped[first[found], np.flatnonzero(found)]
    return x_adv, found


@dataclasses.dataclass(frozen=True)
class Kind:
    """How an attack kind runs:
    `run(spec, logits_fn, x, y, seed, jit_compile=False) -> (x_adv, found)`; `options`:
    the settings an `AttackSpec` of this kind may set (`AttackSpec.options`), with their
    defaults."""

    label: str
    run: Callable
    minimizes: bool = False
    options: dict = dataclasses.field(default_factory=dict)


def _fb_kind(label: str, make: Callable, *, minimizes: bool, needs_start: bool = False,
             options: dict | None = None):
    """A foolbox kind; `minimizes` is said once, for both how restarts combine
    (`_foolbox`) and what the results mean (`Kind.minimizes`: curves, pruning)."""
    return Kind(f"{label} (foolbox)", _foolbox(make, minimizes=minimizes,
                                               needs_start=needs_start), minimizes=minimizes,
                options=options or {})


# foolbox 3 draws one Boundary candidate per step: the paper's "25 trials per
# iteration" (foolbox 2) is approximated by 25x as many steps (the suite's 25 * 200).
KINDS = {
    "pgd": Kind("PGD (ours)", _ours("pgd"), options={"loss": "ce", "random_start": None}),
    "slide": Kind("SLIDE (ours)", _ours("slide"),
                  options={"loss": "margin", "q": 99.0, "random_start": None}),
    "mim": Kind("MIM (ours)", _ours("mim")),
    "apgd_ce": Kind("APGD-CE (ours)", _ours("apgd_ce")),
    "apgd_t": Kind("APGD-T (ours)", _ours("apgd_t")),
    "fab_t": Kind("FAB-T (ours)", _ours("fab_t")),
    "square": Kind("Square (ours)", _ours("square")),
    "sparse_rs": Kind("Sparse-RS (ours)", _ours("sparse_rs")),
    "fgsm": _fb_kind("FGSM", lambda fb, s, r: fb.attacks.LinfFastGradientAttack(
        random_start=r > 0), minimizes=False),
    "fb_pgd": _fb_kind("PGD", lambda fb, s, r: (
        fb.attacks.LinfPGD if s.norm == "linf" else fb.attacks.L2PGD)(
            steps=s.steps or 40, random_start=True), minimizes=False),
    "gaussian": Kind("Gaussian noise (foolbox)", _gaussian, minimizes=True),
    "boundary": _fb_kind("Boundary", lambda fb, s, r: fb.attacks.BoundaryAttack(
        steps=s.steps or 5000), minimizes=True, needs_start=True),
    "deepfool": _fb_kind("DeepFool", lambda fb, s, r: fb.attacks.L2DeepFoolAttack(
        steps=s.steps or 50), minimizes=True),
    "pointwise": _fb_kind("Pointwise", lambda fb, s, r: foolbox_compat.pointwise_attack(
        s.norm), minimizes=True, needs_start=True),
    "ddn": _fb_kind("DDN", lambda fb, s, r: fb.attacks.DDNAttack(steps=s.steps or 100),
                    minimizes=True),
    "cw": _fb_kind("C&W L2", lambda fb, s, r: fb.attacks.L2CarliniWagnerAttack(
        binary_search_steps=s.option("binary_search_steps"), steps=s.steps or 1000,
        stepsize=s.option("stepsize"), initial_const=s.option("initial_const")),
        minimizes=True,  # defaults: 5 binary search steps, foolbox's step and constant
        options={"binary_search_steps": 5, "stepsize": 0.01, "initial_const": 0.001}),
    "salt_pepper": _fb_kind("Salt & Pepper", lambda fb, s, r: fb.attacks.SaltAndPepperNoiseAttack(
        steps=s.steps or 1000), minimizes=True),
    # Tramer and Boneh's EAD (CleverHans' ElasticNetMethod with beta 1e-2, the L1 decision
    # rule, learning rate 1e-2, 1000 iterations, and its defaults: 9 binary search steps,
    # initial constant 1e-3, no early abort) in foolbox's implementation.
    "ead": _fb_kind("EAD", lambda fb, s, r: fb.attacks.EADAttack(
        binary_search_steps=9, steps=s.steps or 1000, initial_stepsize=0.01,
        initial_const=0.001, regularization=0.01, decision_rule="L1", abort_early=False),
        minimizes=True),
    # HopSkipJump (Boundary Attack++, Chen et al. 2020) minimizing l_inf, from a Salt &
    # Pepper start as Boundary; `steps` are its iterations (foolbox: 64), each estimating
    # the gradient from initial_gradient_eval_steps * sqrt(iteration) queries (<= 10000).
    "hsj_linf": _fb_kind("HopSkipJump l_inf", lambda fb, s, r: fb.attacks.HopSkipJumpAttack(
        steps=s.steps or 64, initial_gradient_eval_steps=s.option("initial_gradient_eval_steps"),
        max_gradient_eval_steps=10000, constraint="linf"), minimizes=True, needs_start=True,
        options={"initial_gradient_eval_steps": 100}),
}


def run_attack(spec, logits_fn, x: np.ndarray, y: np.ndarray, *, seed: int = 0,
               jit_compile: bool = False):
    """Runs `spec` on one batch, deterministically for `seed` (our attacks compiled with
    XLA if `jit_compile`).

    Our attacks take `seed` as a stateless seed; foolbox's draw from TensorFlow's and
    NumPy's global generators, which are seeded from (`seed`, restart) before every
    restart (NumPy's global state is restored afterwards).

    Returns:
      `(x_adv, found)`: `[N, ...]` candidate images and `[N]` bool where the attack
      claims an adversarial example (at the radius for fixed-radius attacks, at any
      norm for minimization attacks). Over restarts, a minimization attack keeps per
      example the claimed example of smallest norm; a fixed-radius one keeps the
      first claimed success.
    """
    x, y = np.asarray(x, np.float32), np.asarray(y, np.int32)
    if len(x) == 0:
        return x, np.zeros(0, bool)
    with _numpy_state_kept():
        return KINDS[spec.kind].run(spec, logits_fn, x, y, seed, jit_compile)
