"""The attack suites of PAPER_NOTES section 7 and the code that runs one attack.

An `AttackSpec` names an attack, the threat model (norm, radius) it belongs to, its
restarts and budget. `run_attack` runs it on a batch and returns candidate
adversarial images plus where it claims success; `checks.verify` then decides.

Minimization attacks (DeepFool, DDN, C&W, EAD, Boundary, HopSkipJump, Pointwise, Salt &
Pepper, and Gaussian noise which we run at growing radii) search for the smallest
adversarial perturbation; their norms give accuracy at every radius. Fixed-radius attacks
(our PGD, MIM and SLIDE, foolbox FGSM and PGD) search at the radius only.

Suites: `paper_suite` (PAPER_NOTES section 7), `autoattack_suite` and `strong_additions`
(AutoAttack's standard version), `tb19_suite` (Tramer and Boneh's MNIST evaluation, the
paper's Table 5).
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
from msd_tf.threats import NORMS


@dataclasses.dataclass(frozen=True)
class AttackSpec:
    """One attack of a suite.

    Attributes:
      name: unique name (also the cache folder name).
      kind: which implementation (see `KINDS`).
      norm: threat model it belongs to ("linf", "l2", "l1"); results are measured in it.
      eps: radius of that threat model.
      restarts: runs; an example is broken if any run breaks it (minimization
        attacks keep the smallest norm).
      steps: iteration budget (meaning per kind, queries for Square and Sparse-RS;
        None: the kind's default).
      alpha: step size where the kind has one.
      only_robust: run only on the examples that every earlier attack of the suite in
        the same norm failed to break (AutoAttack's protocol: the attacks --suite=strong
        adds); its per-attack row is then the accuracy against it and those before it.
      options: settings of the kind beyond these (`Kind.options` names them and gives
        their defaults), e.g. {"loss": "margin"} for our PGD; a dict or (name, value)
        pairs, kept as sorted pairs (part of the cache key and of the label).
    """

    name: str
    kind: str
    norm: str
    eps: float
    restarts: int = 1
    steps: int | None = None
    alpha: float | None = None
    only_robust: bool = False
    options: tuple = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Unknown attack kind {self.kind!r}; known: {sorted(KINDS)}.")
        options = dict(self.options)
        takes = KINDS[self.kind].options
        unknown = sorted(set(options) - set(takes))
        if unknown:
            raise ValueError(f"Attack kind {self.kind!r} takes no option(s) {unknown}; it "
                             f"takes {sorted(takes)}. Received: options={options!r}")
        for name, value in options.items():
            if name in OPTION_CHOICES and value not in OPTION_CHOICES[name]:
                raise ValueError(f"Option `{name}` must be one of {OPTION_CHOICES[name]}. "
                                 f"Received: {name}={value!r}")
        object.__setattr__(self, "options", tuple(sorted(options.items())))

    @property
    def minimizes(self) -> bool:
        return KINDS[self.kind].minimizes

    def option(self, name: str):
        """The spec's value of its kind's option `name`, else the kind's default."""
        return dict(self.options).get(name, KINDS[self.kind].options[name])

    def label(self) -> str:
        after = " (+ earlier)" if self.only_robust else ""
        options = "".join(f", {k}={v:g}" if isinstance(v, float) else f", {k}={v}"
                          for k, v in self.options)
        return f"{KINDS[self.kind].label}{after} ({self.norm}, eps={self.eps:g}{options})"


# Option values that are names: the loss our PGD and SLIDE ascend.
_LOSS_FNS = {"ce": cross_entropy, "margin": margin_loss}
OPTION_CHOICES = {"loss": tuple(_LOSS_FNS)}


def paper_suite(dataset: str, *, restarts: int = 10, eps: dict | None = None,
                budget: str = "paper") -> list[AttackSpec]:
    """Every attack of section 7 at the paper's radii and test-time iterations.

    Args:
      dataset: "mnist" / "fashion_mnist" (MNIST radii) or "cifar10".
      restarts: random restarts of the randomized attacks (paper: 10). DDN, DeepFool
        and C&W are deterministic and run once; Boundary keeps its restarts.
      eps: radii overriding the paper's, e.g. {"linf": 4/255} (Tramer-Boneh).
      budget: "paper", or "fast" (few iterations; for tests and smoke runs only).
    """
    radii = dict(threats_lib.radii(dataset), **(eps or {}))
    fast = budget == "fast"
    pgd_presets = {t.norm: t for t in threats_lib.presets(dataset, phase="test")}

    def ours(norm):
        t = pgd_presets[norm]
        if fast:  # 5 steps that can still cross the ball
            return dict(steps=5, alpha=radii[norm] / 2)
        return dict(steps=t.steps, alpha=t.alpha * radii[norm] / t.eps)

    r = restarts
    return [
        AttackSpec("pgd_linf", "pgd", "linf", radii["linf"], r, **ours("linf")),
        AttackSpec("fgsm", "fgsm", "linf", radii["linf"], r),
        AttackSpec("fb_pgd_linf", "fb_pgd", "linf", radii["linf"], r, steps=5 if fast else 40),
        AttackSpec("mim", "mim", "linf", radii["linf"], r, steps=5 if fast else 100,
                   alpha=radii["linf"] / (5 if fast else 100) * 2),
        AttackSpec("pgd_l2", "pgd", "l2", radii["l2"], r, **ours("l2")),
        AttackSpec("fb_pgd_l2", "fb_pgd", "l2", radii["l2"], r, steps=5 if fast else 50),
        AttackSpec("gaussian_noise", "gaussian", "l2", radii["l2"], r, steps=10 if fast else 100),
        AttackSpec("boundary", "boundary", "l2", radii["l2"], 1, steps=50 if fast else 25 * 200),
        AttackSpec("deepfool", "deepfool", "l2", radii["l2"], 1, steps=10 if fast else 50),
        AttackSpec("pointwise_l2", "pointwise", "l2", radii["l2"], r,
                   steps=50 if fast else 1000),
        AttackSpec("ddn", "ddn", "l2", radii["l2"], 1, steps=10 if fast else 100),
        AttackSpec("cw_l2", "cw", "l2", radii["l2"], 1, steps=10 if fast else 1000),
        AttackSpec("pgd_l1", "pgd", "l1", radii["l1"], r, **ours("l1")),
        AttackSpec("salt_pepper", "salt_pepper", "l1", radii["l1"], r,
                   steps=50 if fast else 1000),
        AttackSpec("pointwise_l1", "pointwise", "l1", radii["l1"], r,
                   steps=50 if fast else 1000),
    ]


# The kinds the strong and autoattack suites add to the paper's (AutoAttack's, plus
# Sparse-RS for l_1; FAB-T only in --suite=autoattack so far, see `strong_additions`).
ADDED_KINDS = ("apgd_ce", "apgd_t", "fab_t", "square", "sparse_rs")

# AutoAttack's standard version per norm (fra31/auto-attack, `set_version("standard")`):
# norm -> (APGD-CE restarts, APGD-T target classes); for l_1 both run l_1-APGD with the
# radius schedule 3 eps -> 2 eps -> eps (`attacks/apgd_l1.py`).
AUTOATTACK_STANDARD = {"linf": (1, 9), "l2": (1, 9), "l1": (5, 5)}
# Its FAB-T, every norm: (target classes, iterations); one run per target class.
FAB_T_STANDARD = (9, 100)


def autoattack_suite(dataset: str, *, eps: dict | None = None, budget: str = "paper",
                     apgd_steps: int = 100, queries: int = threats_lib.QUERIES) -> list[AttackSpec]:
    """`--suite=autoattack`: AutoAttack's standard version per norm, each attack on the
    examples still robust to those before it in its norm: APGD-CE (1 restart; l_1: 5)
    and APGD-T (9 target classes; l_1: 5), `apgd_steps` iterations each, then FAB-T (9
    target classes, one run of 100 iterations each; `attacks/fab.py`), then Square
    (`queries` queries; l_1: Square in the l_1 ball). Run as the original AutoAttack on
    an MSD model of an earlier CPU-scale recipe, FAB-T broke 3 of 500 digits at l_1 that
    AutoAttack's APGDs had left, none at l_inf."""
    radii = dict(threats_lib.radii(dataset), **(eps or {}))
    fab_targets, fab_steps = FAB_T_STANDARD
    if budget == "fast":
        apgd_steps, queries, fab_steps = 10, 100, 10
    specs = []
    for norm in NORMS:
        r, (ce_restarts, targets) = radii[norm], AUTOATTACK_STANDARD[norm]
        specs += [
            AttackSpec(f"apgd_ce_{norm}", "apgd_ce", norm, r, ce_restarts, steps=apgd_steps,
                       only_robust=True),
            AttackSpec(f"apgd_t_{norm}", "apgd_t", norm, r, targets, steps=apgd_steps,
                       only_robust=True),
            AttackSpec(f"fab_t_{norm}", "fab_t", norm, r, fab_targets, steps=fab_steps,
                       only_robust=True),
            AttackSpec(f"square_{norm}", "square", norm, r, 1, steps=queries,
                       only_robust=True)]
    return specs


def strong_additions(dataset: str, *, restarts: int = 10, eps: dict | None = None,
                     budget: str = "paper", apgd_steps: int = 100,
                     queries: int = threats_lib.QUERIES) -> list[AttackSpec]:
    """What `--suite=strong` adds to the paper's attacks: `autoattack_suite` without
    FAB-T, with APGD-CE's restarts raised to `restarts` where that is more, and
    Sparse-RS (Croce et al. 2022; `queries` queries) after Square for l_1. Every attack
    runs on the examples still robust to everything before it in its norm; with the
    defaults it is at least AutoAttack's standard version (without FAB-T) on top of the
    paper's. FAB-T is left out until measured on our models (deleting the `fab_t` line
    below adds it, between APGD-T and Square, to the strong suite and to the benchmark
    evaluations that use it)."""
    specs = []
    for spec in autoattack_suite(dataset, eps=eps, budget=budget, apgd_steps=apgd_steps,
                                 queries=queries):
        if spec.kind == "fab_t":
            continue
        if spec.kind == "apgd_ce":
            spec = dataclasses.replace(spec, restarts=max(spec.restarts, restarts))
        specs.append(spec)
        if spec.kind == "square" and spec.norm == "l1":
            specs.append(AttackSpec("sparse_rs_l1", "sparse_rs", "l1", spec.eps, 1,
                                    steps=spec.steps, only_robust=True))
    return specs


# Tramer and Boneh's MNIST evaluation (NeurIPS 2019; ftramer/MultiRobustness:
# scripts/eval_mnist_lps.py, pgd_attack.py, eval_fb.py, eval_ch.py), one run per attack:
# their PGD and SLIDE take 100 steps (PGD: a = 2.5 eps / steps; SLIDE: a = 0.5 at the
# 99th percentile), their Boundary 5000 iterations of up to 25 directions.
TB19_STEPS = 100
TB19_SLIDE_STEP = 0.5
TB19_BOUNDARY = (5000, 25)


def tb19_suite(dataset: str, eps: dict | None = None, budget: str = "paper") -> list[AttackSpec]:
    """`--suite=tb19`: Tramer and Boneh's attacks (the paper's Table 5), every one run
    once (their 40 repetitions are not run: the paper's Table 5 has no restarts), on
    every clean example:

    - l_inf: PGD (ours; 100 steps of 2.5 eps / 100, a random start, the margin loss
      -(z_y - max_{j != y} z_j)); HopSkipJump l_inf (their BAPP; settings not in their
      code: foolbox's, 64 iterations from 100 * sqrt(iteration) gradient queries).
    - l_2: PGD (ours; as l_inf); Boundary (5000 iterations of up to 25 directions:
      25 * 5000 foolbox-3 steps, as `paper_suite`'s); C&W L2 (CleverHans' settings: 9
      binary search steps, 1000 iterations, learning rate 5e-3, initial constant 1e-2).
    - l_1: SLIDE (ours; 100 steps, a = 0.5, q = 99, a random start, the margin loss);
      Pointwise (as `paper_suite`'s); EAD (the L1 decision rule, see `KINDS["ead"]`).

    Args:
      dataset: "mnist" (or "fashion_mnist"): MNIST radii 0.3 / 2.0 / 10.
      eps: radii overriding those.
      budget: "paper", or "fast" (a few iterations; for tests and smoke runs only).
    """
    radii = dict(threats_lib.radii(dataset), **(eps or {}))
    fast = budget == "fast"
    steps = 5 if fast else TB19_STEPS
    ascent = {"loss": "margin", "random_start": True}

    def pgd(norm):  # their step: 2.5 eps / steps
        return dict(steps=steps, alpha=2.5 * radii[norm] / steps, options=ascent)

    iterations, directions = TB19_BOUNDARY
    return [
        AttackSpec("pgd_linf", "pgd", "linf", radii["linf"], **pgd("linf")),
        AttackSpec("hsj_linf", "hsj_linf", "linf", radii["linf"], steps=2 if fast else 64,
                   options={"initial_gradient_eval_steps": 10 if fast else 100}),
        AttackSpec("pgd_l2", "pgd", "l2", radii["l2"], **pgd("l2")),
        AttackSpec("boundary", "boundary", "l2", radii["l2"],
                   steps=50 if fast else directions * iterations),
        AttackSpec("cw_l2", "cw", "l2", radii["l2"], steps=10 if fast else 1000,
                   options={"binary_search_steps": 9, "stepsize": 5e-3, "initial_const": 1e-2}),
        # fast: steps of eps / 2, so that 5 of them can cross the ball
        AttackSpec("slide", "slide", "l1", radii["l1"], steps=steps,
                   alpha=radii["l1"] / 2 if fast else TB19_SLIDE_STEP,
                   options=dict(ascent, q=99.0)),
        AttackSpec("pointwise_l1", "pointwise", "l1", radii["l1"], steps=50 if fast else 1000),
        AttackSpec("ead", "ead", "l1", radii["l1"], steps=10 if fast else 1000),
    ]


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

    def threat_of(spec, restarts):
        takes = KINDS[spec.kind].options
        start = spec.option("random_start") if "random_start" in takes else None
        return threats_lib.ThreatModel(norm=spec.norm, eps=spec.eps,
                                       alpha=spec.alpha or spec.eps / 10,
                                       steps=spec.steps or 100, restarts=restarts,
                                       random_start=restarts > 1 if start is None else start)

    def settings(spec):
        takes = KINDS[spec.kind].options
        out = {"loss_fn": _LOSS_FNS[spec.option("loss")]} if "loss" in takes else {}
        return dict(out, q=float(spec.option("q"))) if "q" in takes else out

    def run(spec, logits_fn, x, y, seed, jit_compile=False):
        if name == "fab_t":
            x_adv = attack.fn(logits_fn, x, y, threat_of(spec, 1), seed=seed,
                              n_targets=spec.restarts, jit_compile=jit_compile).numpy()
            return x_adv, predict(logits_fn, x_adv) != y
        if name not in ("apgd_ce", "apgd_t"):
            budget = {"n_queries": spec.steps or threats_lib.QUERIES} if attack.queries else {}
            x_adv = attack.fn(logits_fn, x, y, threat_of(spec, spec.restarts), seed=seed,
                              jit_compile=jit_compile, **budget, **settings(spec)).numpy()
            return x_adv, predict(logits_fn, x_adv) != y
        if not jit_compile:  # one call; the runs stop per example once one fooled it
            if name == "apgd_t":
                out = attack.fn(logits_fn, x, y, threat_of(spec, 1), seed=seed,
                                n_targets=spec.restarts)
            else:
                out = attack.fn(logits_fn, x, y, threat_of(spec, spec.restarts),
                                seed=seed)
            out = out.numpy()
            return out, predict(logits_fn, out) != y
        # XLA needs static shapes: one call per run on the examples still unbroken.
        threat = threat_of(spec, 1)
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


def _from_salt_and_pepper(attack, fmodel, x, y, spec: "AttackSpec"):
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


def run_attack(spec: AttackSpec, logits_fn, x: np.ndarray, y: np.ndarray, *, seed: int = 0,
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
