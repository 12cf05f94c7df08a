"""The hybrid policy-optimisation loop, with atomic checkpoints and exact resume.

One iteration k::

    episode at theta_k             -> C(theta_k), J_C (model-based gradient)
    [guard: refuse -> theta_{k+1} = best theta, shorter steps, next iteration]
    episode at theta_k + delta v   -> G_zo            (skipped unless the eta rule needs it;
                                                       M such episodes with M directions)
    d_k = (1 - eta_k) G_zo + eta_k J_C
    (step_k, alpha_k) = step_rule(k, d_k)             (the paper: step_k = alpha_k d_k)
    theta_{k+1} = Proj_Theta(theta_k - step_k)

Three pluggable rules, given to :class:`Tuner` (defaults: the paper's, which reproduce
the committed numbers to the last digit):

* the step rule (:mod:`~hybrid_mpc_ros.core.learning.step_rules`): ``ScheduleSteps
  (config.alpha)`` by default, or ``ScaleFreeSteps`` (a trust radius in theta-space);
* the eta rule (:mod:`~hybrid_mpc_ros.core.learning.mixing`): the method's schedule by
  default, or ``AgreementEta``;
* the safety guard (``SafetyGuard``, none by default).

**Rollbacks.** An iteration is *refused* when its base episode was aborted (the record's
``aborted``: an envelope abort on the vehicle), when the guard's verdict on the base
episode's cost and violation is not empty, or when a perturbed episode was aborted.
A refused iteration makes no update and uses no gradient: theta goes back to the best
theta, the step rule shrinks (``step_rule.shrink()``), ``state.guard_rollbacks`` counts
it and its history row has ``rollback`` True and ``rollback_reason``. The next iteration
starts from the best theta, so its base episode flies the best theta again.

"Best so far" is the lowest base-episode cost of the iterations that completed without a
refusal, and its theta (initially theta0 with cost inf: the first episode has nothing to
be compared with, so only the violation limit and an abort can refuse it, and a rollback
then stays at theta0). Only base episodes count: a perturbed episode's cost is the
zeroth-order signal, within delta of theta_k. Each base cost is one noisy sample of
C(theta); the minimum over many of them is biased low (the luckiest episode wins), so on
a noisy system the guard's reference is optimistic and it refuses more than it should,
the safe direction. The iteration whose perturbed episode was aborted does not make its
base theta the best: a theta within delta of a crash is not a safe place to return to.

Methods: ``hybrid`` (eta_k = 1/(k+1)^gamma), ``model_based`` (eta = 1), ``zeroth_order``
(eta = 0) and ``exact_model`` (eta = 1 with the plant's own Jacobians: the exact gradient,
only available in simulation; the paper's "tuned with the exact model" reference).

The loop is independent of where episodes come from. Its core is an ask/tell interface
that never blocks: :meth:`Tuner.ask` says which episode to run next (an
:class:`EpisodeRequest`: theta, whether sensitivities are needed, the role ``base`` or
``perturbed``), :meth:`Tuner.tell` takes the resulting :class:`EpisodeRecord` and, once an
iteration's episodes are all in, makes the update, writes the checkpoint and returns the
iteration's history row. The ROS tuner node calls them from its callbacks; offline,
:meth:`Tuner.step` and :meth:`Tuner.run` loop over ask/tell with ``run_episode(theta,
sensitivities) -> EpisodeRecord`` (:func:`simulated_episodes`), so both are one
implementation.

The random direction v of iteration k (or its M directions, ``config.zo_directions``,
asked for one perturbed episode after the other) is drawn when the base episode is told
(and accepted: a refused iteration draws nothing), as the only draw of that iteration, so the
sequence of draws (and every number of a run) does not depend on how long episodes take
or where they come from. Checkpoints are written only after complete iterations; a run
stopped between the base and the perturbed episode resumes by rerunning that iteration's
episodes from the start: the checkpointed generator state draws the same v again, so the
resumed run equals an uninterrupted one. The checkpoint also holds the step rule's and
the eta rule's kind, settings and state and the guard's settings; resuming with other
rules is refused (it would be another run).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
import time
from typing import Callable

import numpy as np

from hybrid_mpc_ros.core.mpc import theta as th
from hybrid_mpc_ros.core.learning.episode import EpisodeRecord, rollout
from hybrid_mpc_ros.core.learning.gradients import (
    averaged_zeroth_order_gradient, hybrid_direction, Jacobians, model_based_gradient,
    zeroth_order_directions)
from hybrid_mpc_ros.core.learning.mixing import ScheduleEta
from hybrid_mpc_ros.core.learning.objective import ClosedLoopCost
from hybrid_mpc_ros.core.learning.run import (rule_record, save_checkpoint, TuningConfig,
                                              TuningState)
from hybrid_mpc_ros.core.learning.step_rules import SafetyGuard, ScheduleSteps

EpisodeRunner = Callable[[np.ndarray, bool], EpisodeRecord]


@dataclass(frozen=True)
class EpisodeRequest:
    """An episode :meth:`Tuner.ask` wants run: ``role`` episode of iteration ``iteration``.

    ``theta`` (94,, read-only) is what the controller must run; ``sensitivities`` whether
    the record must carry the MPC's sensitivities (the model-based gradient needs them);
    ``role`` is ``'base'`` (at theta_k) or ``'perturbed'`` (at theta_k + delta v, which may
    lie outside the Theta box by up to delta; M of them in turn with M directions).
    """

    iteration: int
    role: str
    theta: np.ndarray
    sensitivities: bool


class RecordRejected(ValueError):
    """:meth:`Tuner.tell` refused a record (malformed, non-finite or run at another theta)."""


@dataclass
class _Iteration:
    """The iteration in progress (never checkpointed: it reruns after a resume)."""

    k: int
    eta: float
    needs_model: bool               # J_C wanted (sensitivities in the base episode)
    needs_zeroth: bool              # the perturbed episode wanted
    theta: np.ndarray
    start: float
    request: EpisodeRequest
    base: dict | None = None        # cost parts, gradient and failures of the base episode
    directions: np.ndarray | None = None    # (M, n) of the zeroth-order estimate
    perturbed_costs: list | None = None     # C(theta + delta v_i) told so far


def _read_only(array: np.ndarray) -> np.ndarray:
    array = np.array(array, dtype=float)
    array.flags.writeable = False
    return array


def _same_rule(saved: dict | None, current: dict | None, what: str) -> None:
    """Refuse to resume with another rule than the checkpoint's (another run)."""
    def label(record):
        return 'none' if record is None else f'{record["kind"]}({record["settings"]})'

    same = (saved is None and current is None) or (
        saved is not None and current is not None
        and (saved['kind'], saved['settings']) == (current['kind'], current['settings']))
    if not same:
        raise ValueError(f'the checkpoint was written with {what} {label(saved)}, this tuner '
                         f'has {label(current)}; resume with the same {what} or start a new '
                         'run')


class Tuner:
    """Runs :class:`TuningConfig` iterations: ask/tell, or on episodes from ``run_episode``.

    ``run_episode`` may be None when episodes come through :meth:`ask`/:meth:`tell` (the
    ROS tuner node). ``jacobians`` are the model's ``(G_x, G_u)`` for the model-based
    gradient (the nominal model, or the plant's for ``exact_model``). ``box`` is Theta.
    ``checkpoint`` (a path) is written after every completed iteration; ``progress(row)``
    is called with each history row.

    ``step_rule`` (default ``ScheduleSteps(config.alpha)``, the paper's) turns the
    direction into the step; ``eta_rule`` (default ``ScheduleEta(config.eta())``, the
    method's schedule) sets the mixing; ``guard`` (default None) judges base episodes (see
    the module docstring). The tuner works on copies of the rules (``self.step_rule``,
    ``self.eta_rule``), so the objects passed in are never changed; with ``state`` (a
    resume) their state comes from it, and rules of another kind or settings than the
    checkpoint's are refused with ValueError. ``observer_model``: the nominal model an
    offset-free controller's disturbance observer predicts with, which the model-based
    gradient of its episodes needs (their records carry the observer's gain).

    History rows (one per iteration): ``cost``, ``tracking``, ``violation`` of the base
    episode (of the part flown, if it was aborted); ``grad_model_norm``, ``grad_zo_norm``
    (None where not computed); ``alpha`` the effective alpha the step rule used (None on
    a rollback); ``step_norm`` = ``|theta_{k+1} - theta_k|`` (after the projection; on a
    rollback, the distance back to the best theta); ``eta``; ``solver_failures``;
    ``wall_s``; ``rollback`` and ``rollback_reason``; ``slope_measured`` and
    ``slope_model``, the directional derivatives along v measured and predicted by
    ``J_C`` (None unless both gradients were computed).
    """

    def __init__(self, config: TuningConfig, run_episode: EpisodeRunner | None,
                 jacobians: Jacobians, cost: ClosedLoopCost, theta0: np.ndarray,
                 checkpoint: str | None = None, progress=None, state: TuningState | None = None,
                 *, step_rule=None, eta_rule=None, guard: SafetyGuard | None = None,
                 observer_model=None):
        self.config = config
        self.observer_model = observer_model
        self.run_episode = run_episode
        self.jacobians = jacobians
        self.cost = cost
        self.box = th.default_box(theta0, config.box_scale, config.box_abs_min)
        self.checkpoint = checkpoint
        self.progress = progress
        self.step_rule = copy.deepcopy(step_rule if step_rule is not None
                                       else ScheduleSteps(config.alpha))
        self.eta_rule = copy.deepcopy(eta_rule if eta_rule is not None
                                      else ScheduleEta(config.eta()))
        self.guard = guard
        if state is None:
            theta0 = self.box.project(np.asarray(theta0, dtype=float))
            rng = np.random.default_rng(config.seed)
            state = TuningState(1, theta0, theta0.copy(), float('inf'),
                                rng.bit_generator.state)
        else:
            records = [(state.step_rule, self.step_rule, 'step rule'),
                       (state.eta_rule, self.eta_rule, 'eta rule')]
            for saved, rule, what in records:
                if saved is not None:
                    _same_rule(saved, rule_record(rule), what)
                    rule.load_state(saved['state'])
            if state.step_rule is not None:      # a fresh state has no guard record yet
                _same_rule(state.guard, rule_record(guard), 'guard')
        self.state = state
        self._record_rules()
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state.rng_state
        self._pending: _Iteration | None = None

    def _record_rules(self) -> None:
        """Copy the rules' records into the state (checkpointed with it)."""
        self.state.step_rule = rule_record(self.step_rule)
        self.state.eta_rule = rule_record(self.eta_rule)
        self.state.guard = rule_record(self.guard)

    @property
    def finished(self) -> bool:
        """Whether every configured iteration has been run."""
        return self.state.iteration > self.config.iterations

    def ask(self) -> EpisodeRequest | None:
        """Return the episode to run next, or None when the run is finished.

        Asking again before telling returns the same request (run it again, for example
        after a refused record).
        """
        if self._pending is None:
            if self.finished:
                return None
            k = self.state.iteration
            eta = self.eta_rule(k)
            needs_model, needs_zeroth = self.eta_rule.needs(k)
            theta = _read_only(self.state.theta)
            self._pending = _Iteration(k, eta, needs_model, needs_zeroth, theta,
                                       time.perf_counter(),
                                       EpisodeRequest(k, 'base', theta, needs_model))
        return self._pending.request

    def _check_record(self, record: EpisodeRecord, request: EpisodeRequest) -> None:
        """Raise :class:`RecordRejected` unless ``record`` answers ``request``."""
        what = f'{request.role} episode of iteration {request.iteration}'
        try:
            record.validate()
        except (ValueError, AttributeError) as exc:
            raise RecordRejected(f'{what}: {exc}') from None
        if not np.array_equal(record.theta, request.theta):
            diff = np.max(np.abs(record.theta - request.theta))
            raise RecordRejected(f'{what} ran at another theta (max |difference| {diff:.3g})')
        base = self._pending.base
        if request.role == 'perturbed' and not record.aborted and record.steps != base['steps']:
            raise RecordRejected(f'{what} has {record.steps} steps, the base episode '
                                 f'{base["steps"]}')

    def tell(self, record: EpisodeRecord) -> dict | None:
        """Take the record of the episode :meth:`ask` returned.

        Returns the iteration's history row when this record completed it (after the update
        or the rollback, and the checkpoint), else None. Raises :class:`RecordRejected` for
        a malformed or non-finite record or one run at another theta, leaving the tuner
        unchanged. An aborted record (``record.aborted``) is a failed episode: the
        iteration is refused (rollback, see the module docstring) and the record is used
        for nothing but the history row's cost of the part flown.
        """
        pending = self._pending
        if pending is None:
            raise RuntimeError('tell() needs an episode from ask() first')
        request = pending.request
        self._check_record(record, request)
        cfg = self.config
        if request.role == 'base':
            tracking, violation = self.cost.parts(record.x, record.u)
            cost = tracking + violation
            pending.base = {'cost': cost, 'tracking': tracking, 'violation': violation,
                            'j_c': None, 'failures': record.failures, 'steps': record.steps}
            if record.aborted:
                return self._rollback(pending, f'base episode aborted: {record.abort_reason}')
            refusal = self.guard.verdict(cost, violation, self.state.best_cost) \
                if self.guard is not None else ''
            if refusal:
                return self._rollback(pending, f'guard: {refusal}')
            if pending.needs_model:
                pending.base['j_c'] = model_based_gradient(
                    record, self.cost, self.jacobians, self.observer_model)
            if pending.needs_zeroth:
                pending.directions = zeroth_order_directions(
                    self.rng, th.N_THETA, cfg.zo_directions, cfg.zo_antithetic)
                pending.perturbed_costs = []
                pending.request = self._perturbed_request(pending)
                return None
            return self._update(pending, None, None)
        if record.aborted:
            return self._rollback(pending, f'perturbed episode aborted: '
                                           f'{record.abort_reason}')
        pending.perturbed_costs.append(self.cost(record))
        if len(pending.perturbed_costs) < len(pending.directions):
            pending.request = self._perturbed_request(pending)
            return None
        g_zo = averaged_zeroth_order_gradient(pending.perturbed_costs, pending.base['cost'],
                                              pending.directions, cfg.delta)
        return self._update(pending, g_zo, pending.perturbed_costs[0])

    def _perturbed_request(self, pending: _Iteration) -> EpisodeRequest:
        """Return the next perturbed episode: theta_k + delta v_i for the next direction i."""
        direction = pending.directions[len(pending.perturbed_costs)]
        return EpisodeRequest(pending.k, 'perturbed',
                              _read_only(pending.theta + self.config.delta * direction), False)

    def _row(self, pending: _Iteration, new_theta: np.ndarray, **values) -> dict:
        """History row of iteration ``pending.k``; ``values`` fill the update's columns."""
        base = pending.base
        row = {'iteration': pending.k, 'cost': base['cost'], 'tracking': base['tracking'],
               'violation': base['violation'], 'grad_model_norm': None,
               'grad_zo_norm': None,
               'step_norm': float(np.linalg.norm(new_theta - pending.theta)), 'alpha': None,
               'eta': pending.eta, 'solver_failures': base['failures'],
               'wall_s': time.perf_counter() - pending.start, 'rollback': False,
               'rollback_reason': '', 'slope_measured': None, 'slope_model': None}
        row.update(values)
        return row

    def _update(self, pending: _Iteration, g_zo: np.ndarray | None,
                cost_perturbed: float | None) -> dict:
        """Finish iteration ``pending.k`` with an update: step, history row, checkpoint."""
        state, base = self.state, pending.base
        theta, eta, j_c = pending.theta, pending.eta, base['j_c']
        direction = hybrid_direction(g_zo, j_c, eta)
        if not np.all(np.isfinite(direction)):
            # finite records can still overflow a gradient; never let it into theta
            raise FloatingPointError(f'iteration {pending.k}: the update direction is not '
                                     'finite; theta left unchanged')
        rule_state = self.step_rule.state()
        step, alpha = self.step_rule(pending.k, direction)
        if not np.all(np.isfinite(step)):
            self.step_rule.load_state(rule_state)
            raise FloatingPointError(f'iteration {pending.k}: the step is not finite; theta '
                                     'left unchanged')
        new_theta = self.box.project(theta - step)
        slopes = {}
        if g_zo is not None and j_c is not None:
            # one scalar test of the model per iteration: measured vs predicted C' along v
            # (the first direction's)
            slopes = {'slope_measured': (cost_perturbed - base['cost']) / self.config.delta,
                      'slope_model': float(j_c @ pending.directions[0])}
            self.eta_rule.observe(pending.k, slopes['slope_measured'], slopes['slope_model'])
        if base['cost'] < state.best_cost:
            state.best_cost, state.best_theta = base['cost'], theta.copy()
        row = self._row(pending, new_theta,
                        grad_model_norm=(float(np.linalg.norm(j_c))
                                         if j_c is not None else None),
                        grad_zo_norm=float(np.linalg.norm(g_zo)) if g_zo is not None else None,
                        alpha=alpha, **slopes)
        return self._complete(pending, row, new_theta)

    def _rollback(self, pending: _Iteration, reason: str) -> dict:
        """Finish iteration ``pending.k`` refused: back to the best theta, shorter steps."""
        state = self.state
        state.guard_rollbacks += 1
        if not self.step_rule.shrink():
            reason += '; the steps were already at their shortest'
        new_theta = state.best_theta.copy()
        row = self._row(pending, new_theta, rollback=True, rollback_reason=reason)
        return self._complete(pending, row, new_theta)

    def _complete(self, pending: _Iteration, row: dict, new_theta: np.ndarray) -> dict:
        """Commit the iteration: history, theta, rule records, checkpoint, progress."""
        state = self.state
        state.history.append(row)
        state.theta = new_theta
        state.iteration = pending.k + 1
        state.rng_state = self.rng.bit_generator.state
        self._record_rules()
        self._pending = None
        if self.checkpoint:
            save_checkpoint(self.checkpoint, self.config, state)
        if self.progress:
            self.progress(row)
        return row

    def step(self) -> dict:
        """Run iteration ``state.iteration`` with ``run_episode`` (ask/tell); return its row."""
        if self.run_episode is None:
            raise RuntimeError('step() needs run_episode; feed episodes with ask()/tell()')
        while True:
            request = self.ask()
            if request is None:
                raise RuntimeError(f'all {self.config.iterations} iterations are done')
            row = self.tell(self.run_episode(request.theta, request.sensitivities))
            if row is not None:
                return row

    def run(self) -> TuningState:
        """Run the remaining iterations (all of them, or the rest after a resume)."""
        while not self.finished:
            self.step()
        return self.state


def simulated_episodes(plant, policy, x0: np.ndarray, steps: int,
                       abort_if=None, observe=None) -> EpisodeRunner:
    """Build an episode runner on the simulated plant: set theta, reset, roll out.

    ``plant`` is a :class:`~hybrid_mpc_ros.core.model.plant.Plant` (reset at the start of
    every episode) or a bare ``step(x, u) -> x+`` callable (see :func:`rollout`).
    ``abort_if(x) -> reason`` (12,), if given, ends an episode early; ``observe(x) ->
    x_seen`` (12,), if given, is the state the policy and the record see (see
    :func:`rollout`).
    """
    def run(theta: np.ndarray, sensitivities: bool) -> EpisodeRecord:
        policy.set_theta(theta)
        return rollout(plant, policy, x0, steps, sensitivities, abort_if=abort_if,
                       observe=observe)
    return run
