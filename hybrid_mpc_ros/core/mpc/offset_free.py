"""Offset-free MPC: a constant state disturbance, its observer and the shifted target.

Under model error the MPC of :mod:`policy` plans with ``x+ = A x + B u + c`` while the
vehicle follows another law, and the closed loop settles where the *model's* steady state
says, away from the target. The standard remedy (Muske and Badgwell 2002; Pannocchia and
Rawlings 2003; Maeder, Borrelli and Morari 2009) adds a constant disturbance ``d`` to the
model, estimates it from what the model failed to predict, and moves the MPC's target so
that the model *with* ``d`` holds the reference position at steady state.

**Which disturbance.** A state disturbance, ``B_d = I`` and ``d`` in R^12 (in the state's
units per period)::

    x+ = A x + B u + c + d

Why not an input disturbance (``B_d = B``, 4 entries, a rotor-speed bias)? With the whole
state measured there are 12 outputs, and offset-free tracking is guaranteed when there are
as many disturbances as measured outputs (Pannocchia and Rawlings 2003; Maeder et al.
2009): then at any closed-loop steady state the observer's update vanishes only if the
one-step error does, so the model with ``d`` reproduces the vehicle's rest point exactly.
An input bias explains a wrong hover speed but not, for example, a wrong coupling of
attitude into velocity in an identified ``A``; tried on the package's 13 vehicles with
other constants than their models (``mismatch_example`` and ``config/scenarios/
robustness``, 20 s from the start theta, observer gain 0.5), the input disturbance left
0.009 to 0.089 m of position error, the state disturbance 0.0002 to 0.008 m.

**Detectability.** With ``C = I`` the augmented pair ``([A, I; 0, I], [I, 0])`` is
detectable: ``rank [A - I, I; I, 0] = 24`` for every ``A``. The target equations below need
the square matrix ``[A - I, B; H, 0]`` (16 x 16) to be of full rank, i.e. the model can
hold any position and yaw at steady state (``z = H x``: states 0, 1, 2 and 8; no
transmission zero at 1); checked when the policy is built.

**Observer** (the state needs none: it is measured). From the one-step prediction error::

    e_t = x_t - A x_{t-1} - B u_{t-1} - c - d_{t-1}
    d_t = d_{t-1} + gain e_t

a first-order filter (``gain`` in (0, 1]) of what the model failed to predict. On a plant
that *is* the model plus a constant input bias ``b``, ``e_t = B b - d_{t-1}`` and
``d_t = (1 - (1 - gain)^t) B b`` exactly. ``u_{t-1}`` is the command that was applied
(the controller reports it with :meth:`OffsetFreePolicy.applied`); a step without a solve
(a failsafe step, a rejected state, a state not measured one period after the last
one) skips the next update. An episode's start
(:meth:`OffsetFreePolicy.reset`) sets ``d = 0`` and forgets the previous step, so episodes
rerun bit for bit and do not depend on the one before. Measurement noise goes into ``d``
with the gain: a vehicle with noisy odometry wants a smaller one.

**Target** (``x_s``, ``u_s``): the solution of::

    (A - I) x_s + B u_s = -c - d          (the model with d at rest)
    H x_s = H x_ref                       (position and yaw at the reference)

closest to ``(x_ref, u_ref)`` (the one solution of the square system). It is affine in
``d``: ``(x_s, u_s) = (x_s0, u_s0) + M d``, ``M`` (16 x 12) fixed. The MPC then tracks
``(x_s, u_s)`` on the model with ``d``.

**The solver.** No new code is generated. In the coordinates ``x = z + M_x d``,
``u = v - M_u d`` the model with ``d`` is the nominal model in ``(z, v)`` (that is what
the target equations say of ``M``), so the one compiled solver of
:class:`~hybrid_mpc_ros.core.mpc.policy.MPCPolicy` solves it with the initial state, the
state and input bounds and the references shifted (all runtime data).

**Sensitivities.** The controller's state is ``(x_t, d_t)``; ``u_t = MPC(x_t, d_t;
theta)``. :meth:`OffsetFreePolicy.sensitivities` gives ``du/dx`` and ``du/dtheta`` at fixed
``d``, :meth:`OffsetFreePolicy.disturbance_sensitivity` ``du/dd`` (4 x 12), all by the
same implicit differentiation of the QP (:meth:`CondensedQP.sensitivities`), ``d``
entering through the predicted states and the target. The tuner chains them with the
observer's Jacobians (:meth:`DisturbanceObserver.jacobians`) in
:func:`~hybrid_mpc_ros.core.learning.gradients.model_based_gradient`.
"""

from __future__ import annotations

import math

import numpy as np

from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.model.nominal_model import AffineModel
from hybrid_mpc_ros.core.model.quadcopter import NU, NX
from hybrid_mpc_ros.core.mpc import acados_env
from hybrid_mpc_ros.core.mpc.condensed_qp import condense
from hybrid_mpc_ros.core.mpc.policy import MPCConfig, MPCPolicy, SOFT_IDX

ND = NX                            # a state disturbance: one per state, per period
CONTROLLED = (0, 1, 2, 8)          # z = H x: position (3) and yaw, held at the reference


class DisturbanceObserver:
    """The observer ``d_t = d_{t-1} + gain e_t`` of the module docstring (stateless).

    ``model`` is the nominal model (its ``A``, ``B``, ``c``), ``gain`` in (0, 1].
    """

    def __init__(self, model: AffineModel, gain: float):
        if not (math.isfinite(gain) and 0.0 < gain <= 1.0):
            raise ConfigError(f'disturbance observer gain must lie in (0, 1], got {gain}')
        self.gain = float(gain)
        self.A, self.B, self.c = model.A, model.B, model.c

    def update(self, d: np.ndarray, x_prev: np.ndarray, u_prev: np.ndarray,
               x: np.ndarray) -> np.ndarray:
        """Return the new estimate (12,) after the step ``(x_prev (12,), u_prev (4,)) -> x``.

        ``d`` (12,) is the estimate that step was planned with; x (12,) the state it led to.
        """
        error = x - self.A @ x_prev - self.B @ u_prev - d - self.c
        return d + self.gain * error

    def jacobians(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(dd_t/dd_{t-1}, dd_t/dx_t, dd_t/dx_{t-1}`` (12x12 each)``, dd_t/du_{t-1} (12x4))``.

        Constant: the observer is affine.
        """
        gain = self.gain
        return ((1.0 - gain) * np.eye(ND), gain * np.eye(NX), -gain * self.A, -gain * self.B)


class SteadyStateTarget:
    """``(x_s, u_s) = (x_s0, u_s0) + M d``: the target equations of the module docstring.

    Built from the nominal ``model``; :meth:`set_reference` fixes ``(x_ref (12,), u_ref
    (4,))``. Raises ConfigError when the model cannot hold the reference's position and
    yaw at steady state.
    """

    def __init__(self, model: AffineModel):
        h_mat = np.zeros((len(CONTROLLED), NX))
        h_mat[np.arange(len(CONTROLLED)), CONTROLLED] = 1.0
        self.h_mat = h_mat
        self.c = model.c
        self.eqs = np.block([[model.A - np.eye(NX), model.B],
                             [h_mat, np.zeros((len(CONTROLLED), NU))]])      # (16, 16)
        self.eqs_pinv = np.linalg.pinv(self.eqs)
        rhs_d = np.vstack([-np.eye(ND), np.zeros((len(CONTROLLED), ND))])   # d(rhs)/dd
        self.gain = self.eqs_pinv @ rhs_d                                  # M (16, 12)
        self.gain_x, self.gain_u = self.gain[:NX], self.gain[NX:]
        if np.max(np.abs(self.eqs @ self.gain - rhs_d)) > 1e-8:
            raise ConfigError('offset-free MPC: the nominal model cannot hold every position '
                              'and yaw at steady state ([A - I, B; H, 0] is singular)')
        self.x0 = self.u0 = None

    def set_reference(self, x_ref: np.ndarray, u_ref: np.ndarray) -> None:
        """Solve for the target at ``d = 0`` closest to ``(x_ref, u_ref)``."""
        z_ref = np.concatenate([x_ref, u_ref])
        rhs = np.concatenate([-self.c, self.h_mat @ x_ref])
        z0 = z_ref + self.eqs_pinv @ (rhs - self.eqs @ z_ref)
        residual = float(np.max(np.abs(self.eqs @ z0 - rhs)))
        if residual > 1e-8 * max(1.0, float(np.max(np.abs(rhs)))):
            raise ConfigError('offset-free MPC: the nominal model cannot hold the reference '
                              f'position and yaw at steady state (residual {residual:.3g})')
        self.x0, self.u0 = z0[:NX], z0[NX:]

    def at(self, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(x_s (12,), u_s (4,))`` for the disturbance d (12,)."""
        return self.x0 + self.gain_x @ d, self.u0 + self.gain_u @ d


class OffsetFreePolicy(MPCPolicy):
    """:class:`MPCPolicy` with the disturbance estimate ``d`` as part of its state.

    Same interface, plus :attr:`disturbance` (the estimate the last :meth:`solve` used,
    (12,)), :meth:`disturbance_sensitivity` (du/dd, 4x12) and :meth:`applied` (the
    command actually sent). ``observer_gain`` in (0, 1]. :meth:`solve` first updates the
    estimate from the previous step, then solves at the shifted target; the returned
    input and every sensitivity are in the model's coordinates (not the solver's shifted ones).
    """

    def __init__(self, model: AffineModel, config: MPCConfig, theta: np.ndarray,
                 x_ref: np.ndarray, u_ref: np.ndarray, observer_gain: float):
        self.observer = DisturbanceObserver(model, observer_gain)
        self.target = SteadyStateTarget(model)
        self.disturbance = np.zeros(ND)
        self._s = np.zeros(NX)             # the solver's coordinates: x = z + s, u = v - a
        self._a = np.zeros(NU)
        self._bound_setter = None
        # lbu, ubu (4,) and lbx, ubx (9,) of the solver, refilled in place every step
        self._bounds = (np.empty(NU), np.empty(NU), np.empty(len(SOFT_IDX)),
                        np.empty(len(SOFT_IDX)))
        self._prev_x = self._prev_u = None
        self._sens_d = None
        self._x_s = np.zeros(NX)
        self._u_s = np.zeros(NU)
        self._soft_idx = np.array(SOFT_IDX)
        self._x_lb, self._x_ub = np.array(config.x_lb), np.array(config.x_ub)
        super().__init__(model, config, theta, x_ref, u_ref)

    def _init_qp(self) -> None:
        super()._init_qp()
        horizon = self.config.horizon
        self._w0 = self.qp.w.copy()
        # dX/dd at fixed U: every stage adds d
        _, gam_d, _ = condense([self.model.A] * horizon, [np.eye(ND)] * horizon,
                               [np.zeros(NX)] * horizon)
        self._gamma_d = gam_d.reshape(horizon * NX, horizon, ND).sum(axis=1)

    def set_reference(self, x_ref: np.ndarray, u_ref: np.ndarray | None = None) -> None:
        """Track ``x_ref``'s position and yaw (see :meth:`MPCPolicy.set_reference`)."""
        super().set_reference(x_ref, u_ref)
        target, horizon = self.target, self.config.horizon
        target.set_reference(self.x_ref, self.u_ref)
        # in the solver's coordinates the target is (x_s0, u_s0) whatever d is
        yref = np.concatenate([target.x0, target.u0 - self._u_off])
        for k in range(horizon):
            self.solver.set(k, 'yref', yref)
        self.solver.set(horizon, 'yref', target.x0)
        if self._bound_setter is None:         # the solver exists from here on
            self._bound_setter = acados_env.BoundSetter(self.solver)
        self._use_disturbance(self.disturbance)

    def _use_disturbance(self, d: np.ndarray) -> None:
        """Put ``d`` (12,) into the solver (shifted bounds and references) and the QP."""
        horizon, target = self.config.horizon, self.target
        self._x_s, self._u_s = target.at(d)
        # x = z + s, u = v - a with s = M_x d, a = -M_u d: (A - I) s - B a = -d, so the
        # model with d is the nominal one in (z, v), and the target is (x_s0, u_s0) there
        np.matmul(target.gain_x, d, out=self._s)
        np.matmul(target.gain_u, d, out=self._a)
        np.negative(self._a, out=self._a)
        lbu, ubu, lbx, ubx = self._bounds
        np.add(self._u_lb - self._u_off, self._a, out=lbu)
        np.add(self._u_ub - self._u_off, self._a, out=ubu)
        soft = self._s[self._soft_idx]
        np.subtract(self._x_lb, soft, out=lbx)
        np.subtract(self._x_ub, soft, out=ubx)
        setter = self._bound_setter
        for k in range(horizon):
            setter.set(k, 'lbu', lbu)
            setter.set(k, 'ubu', ubu)
            setter.set(k + 1, 'lbx', lbx)
            setter.set(k + 1, 'ubx', ubx)
        self.qp.w = self._w0 + self._gamma_d @ d
        self._sens = None

    def reset(self) -> None:
        """Forget the warm start, the previous step and the estimate (``d = 0``)."""
        super().reset()
        self._prev_x = self._prev_u = None
        self.disturbance = np.zeros(ND)
        self._use_disturbance(self.disturbance)

    def applied(self, u: np.ndarray | None) -> None:
        """Say which command (4,) the last step sent; None: no command from a solve.

        :meth:`solve` assumes its own input was sent; a controller that sent another
        (shifted plan, failsafe, clipping) corrects that here, before the next solve.
        """
        if u is None or self._prev_x is None:
            self._prev_x = self._prev_u = None
        else:
            self._prev_u = np.array(u, dtype=float)

    def solve(self, x: np.ndarray):
        """Update ``d`` from the previous step, then solve from x (12,) (see the class)."""
        x = np.asarray(x, dtype=float)
        valid = x.shape == (NX,) and bool(np.all(np.isfinite(x)))
        if valid and self._prev_x is not None:
            d = self.observer.update(self.disturbance, self._prev_x, self._prev_u, x)
            if np.all(np.isfinite(d)):
                self.disturbance = d
                self._use_disturbance(d)
        sol = super().solve(x)
        if valid:
            self._prev_x, self._prev_u = x.copy(), sol.u.copy()
        else:
            self._prev_x = self._prev_u = None
        return sol

    def _run_solver(self, x: np.ndarray) -> tuple[int, int, int]:
        status = super()._run_solver(x - self._s)
        plan = self._u_stack.reshape(self.config.horizon, NU)
        plan -= self._a                             # from v = u + a back to u
        return status

    def sensitivities(self) -> tuple[np.ndarray, np.ndarray]:
        """``(du/dx (4x12), du/dtheta (4x94))`` at fixed ``d`` (see :meth:`MPCPolicy`)."""
        if self._sens is None:
            self._compute_sensitivities()
        return self._sens

    def disturbance_sensitivity(self) -> np.ndarray:
        """``du/dd`` (4x12) of the last successful :meth:`solve` (read-only, cached)."""
        if self._sens is None:             # the base class clears it whenever it goes stale
            self._compute_sensitivities()
        return self._sens_d

    def _compute_sensitivities(self) -> None:
        horizon = self.config.horizon
        d_targets = (self._gamma_d, np.tile(self.target.gain_x, (horizon, 1)),
                     np.tile(self.target.gain_u, (horizon, 1)))
        du_dx, du_dtheta, du_dd = self.qp.sensitivities(
            self._x0, self._u_stack, self._x_s, self._u_s, self.active_set(), d_targets)
        for array in (du_dx, du_dtheta, du_dd):
            array.flags.writeable = False
        self._sens, self._sens_d = (du_dx, du_dtheta), du_dd

    def set_disturbance(self, d: np.ndarray) -> None:
        """Hold the estimate at d (12,) for the next :meth:`solve`, which then skips its update.

        For checks (finite differences, a known bias); a controller never calls it.
        """
        self._prev_x = self._prev_u = None
        self.disturbance = np.array(d, dtype=float)
        self._use_disturbance(self.disturbance)


def finite_difference_disturbance_sensitivity(policy: OffsetFreePolicy, x: np.ndarray,
                                              step: float = 1e-5):
    """Central differences of ``du/dd`` at state x (12,) and the policy's current d.

    Returns ``(du/dd (4x12), same_active_set)`` as
    :func:`~hybrid_mpc_ros.core.mpc.policy.finite_difference_sensitivities` does: False
    when some perturbation changed the active set. Solves with ``d +- step e_i`` held (no
    observer update), then restores ``d`` and solves at x again.
    """
    d0 = policy.disturbance.copy()
    out = np.empty((NU, ND))
    key = _solve_at(policy, x, d0)[1]
    same = True
    try:
        for i in range(ND):
            outs = []
            for sign in (1.0, -1.0):
                d = d0.copy()
                d[i] += sign * step
                u, k = _solve_at(policy, x, d)
                same &= k == key
                outs.append(u)
            out[:, i] = (outs[0] - outs[1]) / (2 * step)
    finally:
        _solve_at(policy, x, d0)
    return out, bool(same)


def _solve_at(policy: OffsetFreePolicy, x: np.ndarray, d: np.ndarray):
    """Solve at x (12,) with the estimate held at d (12,); return u (4,) and the active set."""
    policy.set_disturbance(d)
    sol = policy.solve(x)
    if not sol.ok:
        raise RuntimeError(f'finite differences: solve failed ({sol.message})')
    act = policy.active_set()
    return sol.u, (act.fixed_inputs.tobytes(), act.violated.tobytes(), act.kinks.tobytes())
