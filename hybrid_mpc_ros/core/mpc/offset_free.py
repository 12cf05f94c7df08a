"""Offset-free MPC: a constant input disturbance, its observer and the shifted target.

Under model error the MPC of :mod:`policy` plans with ``x+ = A x + B u + c`` while the
vehicle follows another law, and the closed loop settles where the *model's* steady state
says, away from the target. The standard remedy (Muske and Badgwell 2002; Pannocchia and
Rawlings 2003; Maeder, Borrelli and Morari 2009) adds a constant disturbance ``d`` to the
model, estimates it from what the model failed to predict, and moves the MPC's target so
that the model *with* ``d`` holds the reference position at steady state.

**Which disturbance.** An input disturbance, ``B_d = B`` and ``d`` in R^4 [rad/s]::

    x+ = A x + B (u + d) + c

Why: the model errors that move a multirotor's steady state are a wrong hover speed
(mass, thrust coefficient), rotor-to-rotor thrust or torque differences and a centre of
mass off the axis: all of them are, at hover, a constant offset of the rotor speeds. Four
disturbances for the four controlled variables ``z = H x`` (position and yaw, ``H``
picks states 0, 1, 2 and 8), as offset-free tracking of four outputs needs.
A constant wind would need a velocity disturbance instead (not offered here).

**Detectability.** With the full state measured (``C = I``) the augmented pair
``([A, B; 0, I], [I, 0])`` is detectable iff ``rank [A - I, B; I, 0] = 12 + 4``, i.e. iff
``B`` has full column rank 4 (checked when the observer is built). The target equations
below need the square matrix ``[A - I, B; H, 0]`` (16 x 16) to be of full rank: the model
can hold any position and yaw at steady state (no transmission zero at 1).

**Observer** (the state needs none: it is measured). From the one-step prediction error::

    e_t = x_t - A x_{t-1} - B (u_{t-1} + d_{t-1}) - c
    d_t = d_{t-1} + L e_t,     L = gain * B^+        (B^+ = (B^T B)^-1 B^T, 4 x 12)

so ``d_t = (1 - gain) d_{t-1} + gain B^+ (x_t - A x_{t-1} - B u_{t-1} - c)``: a first-order
filter (``gain`` in (0, 1]) of the least-squares input that explains the last step. On a
plant that *is* the model plus a constant input bias ``b``, ``B^+ e = b - d`` exactly and
``d_t -> b`` geometrically with rate ``1 - gain``. ``u_{t-1}`` is the command that was
applied (the controller reports it with :meth:`OffsetFreePolicy.applied`); a step without
one (a failsafe step, a rejected state) skips the next update. An episode's start
(:meth:`OffsetFreePolicy.reset`) sets ``d = 0`` and forgets the previous step, so episodes
rerun bit for bit and do not depend on the one before.

**Target** (``x_s``, ``u_s``): the solution of::

    (A - I) x_s + B u_s = -c - B d        (the model with d at rest)
    H x_s = H x_ref                       (position and yaw at the reference)

closest to ``(x_ref, u_ref)`` (the square system has one solution when of full rank).
It is affine in ``d``: ``(x_s, u_s) = (x_s0, u_s0) + M d``, ``M`` (16 x 4) fixed. The MPC
then tracks ``(x_s, u_s)`` on the model with ``d``. With ``d`` constant, any closed-loop
steady state has ``B^+ e = 0``; where the plant's error lies in the range of ``B`` (the
input-bias case), the model with ``d`` reproduces the plant's rest point and the position
error vanishes.

**The solver.** No new code is generated: with ``v = u + d`` the problem is the nominal
MPC in ``v`` with the input bounds and the input reference shifted by ``d``, so the one
compiled solver of :class:`~hybrid_mpc_ros.core.mpc.policy.MPCPolicy` serves both (the
bounds and references are runtime data).

**Sensitivities.** The controller's state is ``(x_t, d_t)``; ``u_t = MPC(x_t, d_t;
theta)``. :meth:`OffsetFreePolicy.sensitivities` gives ``du/dx`` and ``du/dtheta`` at fixed
``d``, :meth:`OffsetFreePolicy.disturbance_sensitivity` ``du/dd`` (4 x 4), all by the same
implicit differentiation of the QP (:meth:`CondensedQP.sensitivities`), ``d`` entering
through the predicted states and the target. The tuner chains them with the observer's
Jacobians (:meth:`DisturbanceObserver.jacobians`) in
:func:`~hybrid_mpc_ros.core.learning.gradients.model_based_gradient`.
"""

from __future__ import annotations

import math

import numpy as np

from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.model.nominal_model import AffineModel
from hybrid_mpc_ros.core.model.quadcopter import NU, NX
from hybrid_mpc_ros.core.mpc.policy import MPCConfig, MPCPolicy

ND = NU                            # an input disturbance: one per rotor [rad/s]
CONTROLLED = (0, 1, 2, 8)          # z = H x: position (3) and yaw, held at the reference


class DisturbanceObserver:
    """The observer ``d_t = d_{t-1} + gain B^+ e_t`` of the module docstring (stateless).

    ``model`` is the nominal model (its ``A``, ``B``, ``c``), ``gain`` in (0, 1]. Raises
    ConfigError when ``B`` is not of full column rank (``d`` is then not detectable).
    """

    def __init__(self, model: AffineModel, gain: float):
        if not (math.isfinite(gain) and 0.0 < gain <= 1.0):
            raise ConfigError(f'disturbance observer gain must lie in (0, 1], got {gain}')
        self.gain = float(gain)
        self.A, self.B, self.c = model.A, model.B, model.c
        if np.linalg.matrix_rank(self.B) < NU:
            raise ConfigError('the nominal model\'s B is not of full column rank: an input '
                              'disturbance is not detectable from the state')
        self.gain_matrix = self.gain * np.linalg.pinv(self.B)         # L (4, 12)

    def update(self, d: np.ndarray, x_prev: np.ndarray, u_prev: np.ndarray,
               x: np.ndarray) -> np.ndarray:
        """Return the new estimate (4,) after the step ``(x_prev (12,), u_prev (4,)) -> x``.

        ``d`` (4,) is the estimate that step was planned with; x (12,) the state it led to.
        """
        error = x - self.A @ x_prev - self.B @ (u_prev + d) - self.c
        return d + self.gain_matrix @ error

    def jacobians(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(dd_t/dd_{t-1} (4x4), dd_t/dx_t (4x12), dd_t/dx_{t-1} (4x12), dd_t/du_{t-1} (4x4))``.

        Constant: the observer is affine.
        """
        lmat = self.gain_matrix
        return (np.eye(ND) - lmat @ self.B, lmat, -lmat @ self.A, -lmat @ self.B)


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
        rhs_d = np.vstack([-model.B, np.zeros((len(CONTROLLED), ND))])      # d(rhs)/dd
        self.gain = self.eqs_pinv @ rhs_d                                  # M (16, 4)
        self.gain_x, self.gain_u = self.gain[:NX], self.gain[NX:]
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
        """``(x_s (12,), u_s (4,))`` for the disturbance d (4,)."""
        return self.x0 + self.gain_x @ d, self.u0 + self.gain_u @ d


class OffsetFreePolicy(MPCPolicy):
    """:class:`MPCPolicy` with the disturbance estimate ``d`` as part of its state.

    Same interface, plus :attr:`disturbance` (the estimate the last :meth:`solve` used,
    (4,) [rad/s]), :meth:`disturbance_sensitivity` (du/dd, 4x4) and :meth:`applied` (the
    command actually sent). ``observer_gain`` in (0, 1]. :meth:`solve` first updates the
    estimate from the previous step, then solves at the shifted target; the returned
    input and every sensitivity are in absolute rotor speeds ``u`` (not ``u + d``).
    """

    def __init__(self, model: AffineModel, config: MPCConfig, theta: np.ndarray,
                 x_ref: np.ndarray, u_ref: np.ndarray, observer_gain: float):
        self.observer = DisturbanceObserver(model, observer_gain)
        self.target = SteadyStateTarget(model)
        self.disturbance = np.zeros(ND)
        self._prev_x = self._prev_u = None
        self._sens_d = None
        self._x_s = np.zeros(NX)
        self._u_s = np.zeros(NU)
        self._yref = np.zeros(NX + NU)
        super().__init__(model, config, theta, x_ref, u_ref)

    def _init_qp(self) -> None:
        super()._init_qp()
        horizon = self.config.horizon
        self._w0 = self.qp.w.copy()
        # dX/dd at fixed U: every stage's input is u_k + d
        self._gamma_d = self.qp.gam.reshape(horizon * NX, horizon, NU).sum(axis=1)

    def set_reference(self, x_ref: np.ndarray, u_ref: np.ndarray | None = None) -> None:
        """Track ``x_ref``'s position and yaw (see :meth:`MPCPolicy.set_reference`)."""
        super().set_reference(x_ref, u_ref)
        self.target.set_reference(self.x_ref, self.u_ref)
        self._use_disturbance(self.disturbance)

    def _use_disturbance(self, d: np.ndarray) -> None:
        """Put ``d`` (4,) into the solver (shifted bounds and references) and the QP."""
        solver, horizon = self.solver, self.config.horizon
        self._x_s, self._u_s = self.target.at(d)
        yref = self._yref
        yref[:NX] = self._x_s
        yref[NX:] = self._u_s + d - self._u_off          # the solver's input is u + d
        lbu, ubu = self._u_lb + d - self._u_off, self._u_ub + d - self._u_off
        for k in range(horizon):
            solver.set(k, 'yref', yref)
            solver.constraints_set(k, 'lbu', lbu)
            solver.constraints_set(k, 'ubu', ubu)
        solver.set(horizon, 'yref', self._x_s)
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
        status = super()._run_solver(x)
        plan = self._u_stack.reshape(self.config.horizon, NU)
        plan -= self.disturbance                    # from v = u + d back to u
        return status

    def sensitivities(self) -> tuple[np.ndarray, np.ndarray]:
        """``(du/dx (4x12), du/dtheta (4x94))`` at fixed ``d`` (see :meth:`MPCPolicy`)."""
        if self._sens is None:
            self._compute_sensitivities()
        return self._sens

    def disturbance_sensitivity(self) -> np.ndarray:
        """``du/dd`` (4x4) of the last successful :meth:`solve` (read-only, cached)."""
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
        """Hold the estimate at d (4,) for the next :meth:`solve`, which then skips its update.

        For checks (finite differences, a known bias); a controller never calls it.
        """
        self._prev_x = self._prev_u = None
        self.disturbance = np.array(d, dtype=float)
        self._use_disturbance(self.disturbance)


def finite_difference_disturbance_sensitivity(policy: OffsetFreePolicy, x: np.ndarray,
                                              step: float = 1e-4) -> np.ndarray:
    """Central differences ``du/dd`` (4x4) of ``policy`` at state x (12,) and its current d.

    Solves with ``d +- step e_i`` held (no observer update), then restores ``d`` and solves
    at x again.
    """
    d0 = policy.disturbance.copy()
    out = np.empty((NU, ND))
    try:
        for i in range(ND):
            outs = []
            for sign in (1.0, -1.0):
                d = d0.copy()
                d[i] += sign * step
                outs.append(_solve_at(policy, x, d))
            out[:, i] = (outs[0] - outs[1]) / (2 * step)
    finally:
        _solve_at(policy, x, d0)
    return out


def _solve_at(policy: OffsetFreePolicy, x: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Solve at x (12,) with the estimate held at d (4,); return u (4,)."""
    policy.set_disturbance(d)
    sol = policy.solve(x)
    if not sol.ok:
        raise RuntimeError(f'finite differences: solve failed ({sol.message})')
    return sol.u
