"""The second nominal model kind: the nonlinear quadcopter with nominal constants, SQP-RTI.

:class:`NonlinearMPCPolicy` plans with the physics model of :mod:`quadcopter` (RK4 over
``dt`` with ``substeps`` stages, the same integrator as the simulator) built from
*nominal* constants :class:`QuadParams`, which may differ from the plant's. Everything
else is the formulation of :mod:`mpc` (cost, theta, soft state bounds, hard input bounds,
input offset, unit time steps), shared through :class:`mpc.MPCPolicy`; the interface is
the same (``solve``, ``sensitivities``, ``set_theta``, ``set_reference``, ``theta``,
``last``, ``timings``, ``plan``, ``active_set``; ``model`` is the nominal
:class:`quadcopter.Quadcopter`, with the ``step``/``jacobians`` of an affine model).

Solving. acados SQP-RTI does one Gauss-Newton QP per call, linearised at the current
iterate. Each :meth:`solve` first writes the initial guess: the previous solution shifted
by one stage (its last state and input repeated at the end), with stage 0 replaced by the
measured state; after a failed solve, and on the first call, the guess is the measured
state held over the horizon with hover inputs. The dynamics do not depend on position, so
a guess from a previous episode (hover at the target) remains a good one after a reset to
the origin. ``rti_iterations`` (default 1) runs that many RTI iterations per solve, each
re-linearising at the previous one's result, stopping early once no input of the plan
moves by more than ``rti_tol`` rad/s; enough iterations converge to a local solution of
the NLP (Gauss-Newton changes the steps, not the fixed point). ``MPCSolution.qp_iter`` is
summed over the iterations; ``solve_ms`` includes writing the guess and reading iterates.

Sensitivities: the linearised approximation. ``sensitivities()`` differentiates the QP
of the *last* RTI iteration, not the nonlinear program: the stage dynamics are frozen at
their linearisation ``x+ = A_k x + B_k u + c_k`` and :mod:`condensed_qp` differentiates that
QP's KKT conditions. These are exact derivatives of the QP's solution map (which is the
returned plan) but only an approximation of those of the NLP's solution map, because
(a) with few iterations the linearisation point is not the solution, and (b) even at
convergence the QP leaves out how the linearisation moves with x and theta, i.e. the
dynamics' curvature weighted by the multipliers (the Gauss-Newton Hessian omits it).
Measured on the paper's transient with a converged solve (``test/core/test_mpc_nonlinear.py``):
relative to central differences of the policy, du/dx is off by 11-18 % and du/dtheta by
1-5 %, while an exact-Hessian differentiation of the same NLP agrees to ~1e-8; the gap
vanishes at the target, where the multipliers do.

The QP read from acados (``get_from_qp_in``, acados 0.2.2): for stage k, ``A`` (12x12) and
``B`` (12x4) are the Jacobians of the discrete dynamics with respect to x and the solver
input ``u - u_offset``, at the linearisation point ``(xl_k, ul_k)``, and ``b`` (12,) is the
defect ``F(xl_k, ul_k + u_offset) - xl_{k+1}`` of that point (``ul_k`` in solver inputs);
the QP variables are the deltas from it. After the call acados' iterate is the linearisation
point plus the full QP step, and ``qp_in`` still holds that QP until the next call. In
absolute variables (rotor speeds ``u``) that is ``x+ = A x + B u + c`` with
``c = b + xl_{k+1} - A xl_k - B (ul_k + u_offset)`` (:meth:`NonlinearMPCPolicy.linearisation`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
import math

import numpy as np

from hybrid_mpc_ros.core.mpc import acados_env
from hybrid_mpc_ros.core.mpc.condensed_qp import CondensedQP
from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.mpc.policy import MPCConfig, MPCPolicy, SOFT_IDX
from hybrid_mpc_ros.core.model.quadcopter import NU, QuadParams, Quadcopter

# fields that only change what Python does between solver calls: not part of the cache key
RUNTIME_FIELDS = ('rti_iterations', 'rti_tol')


@dataclass(frozen=True)
class NonlinearMPCConfig(MPCConfig):
    """:class:`mpc.MPCConfig` plus the nonlinear model's integrator and the RTI loop."""

    substeps: int = 4           # RK4 stages per dt in the nominal model (compiled)
    rti_iterations: int = 1     # SQP-RTI iterations per solve (runtime)
    rti_tol: float = 0.0        # rad/s: stop iterating once no planned input moves more

    def __post_init__(self):
        super().__post_init__()
        if int(self.substeps) != self.substeps or self.substeps < 1:
            raise ConfigError(f'substeps must be a positive integer, got {self.substeps}')
        if int(self.rti_iterations) != self.rti_iterations or self.rti_iterations < 1:
            raise ConfigError(f'rti_iterations must be a positive integer, '
                              f'got {self.rti_iterations}')
        if not (math.isfinite(self.rti_tol) and self.rti_tol >= 0.0):
            raise ConfigError(f'rti_tol must be >= 0, got {self.rti_tol}')

    @classmethod
    def from_config(cls, config: MPCConfig, **overrides) -> 'NonlinearMPCConfig':
        """Return ``config`` with ``overrides`` (a plain :class:`MPCConfig` is extended)."""
        if isinstance(config, cls) and not overrides:
            return config
        values = {item.name: getattr(config, item.name) for item in fields(config)}
        values.update(overrides)
        return cls(**values)


def formulation_description(params: QuadParams, config: NonlinearMPCConfig) -> dict:
    """Describe what the generated solver depends on (the cache key hashes it)."""
    compiled = {key: val for key, val in asdict(config).items() if key not in RUNTIME_FIELDS}
    return dict(compiled, nominal=asdict(params), kind='nonlinear-rk4', soft_idx=SOFT_IDX,
                version=1)


class NonlinearMPCPolicy(MPCPolicy):
    """``u = MPC(x; theta)`` on the nonlinear quadcopter with nominal constants (SQP-RTI).

    ``params`` are the nominal constants; ``config`` an :class:`MPCConfig` (extended to a
    :class:`NonlinearMPCConfig`); ``theta`` (94,) the start, ``x_ref`` (12,) and ``u_ref``
    (4,) the references (:meth:`hybrid_mpc_ros.core.scenario.Scenario.nonlinear_policy`
    builds one from a scenario). See the module docstring
    for the warm start and for what :meth:`sensitivities` approximates. After each solve,
    ``rti_iterations_done`` and ``rti_last_step`` (the largest change of a planned input in
    the last iteration, rad/s) tell how far the iterations converged.
    """

    def __init__(self, params: QuadParams, config: MPCConfig, theta: np.ndarray,
                 x_ref: np.ndarray, u_ref: np.ndarray):
        self.params = params
        config = NonlinearMPCConfig.from_config(config)
        if not config.u_min < self.params.hover_speed < config.u_max:
            # the model could not hold altitude: its hover reference would be unreachable
            raise ConfigError(f'the nominal constants hover at {self.params.hover_speed:.1f} '
                              f'rad/s, outside the input bounds [{config.u_min}, '
                              f'{config.u_max}]')
        self.model = Quadcopter(self.params, config.dt, config.substeps)
        self._xs = self._us = None          # last iterate (N+1 x 12, N x 4 solver inputs)
        self._lin = None                    # linearisation point of the last QP
        self._qp = None
        self.rti_iterations_done = 0
        self.rti_last_step = math.nan
        self._start(config, theta, x_ref, u_ref)

    # ---------------------------------------------------------------- formulation
    def formulation_key(self) -> str:
        """Return the hash of everything compiled into the solver, nominal constants included."""
        return acados_env.formulation_key(formulation_description(self.params, self.config))

    def _dynamics_expr(self, x, u):
        """Nominal RK4 step (CasADi, 12) from x (12) and solver input ``u - u_offset`` (4)."""
        import casadi as ca
        x_sym, u_sym, _, x_next = self.model.symbolic
        step = ca.Function('nominal_step', [x_sym, u_sym], [x_next])
        return step(x, u + ca.DM(self._u_off))

    def _init_qp(self) -> None:
        """Nothing to build yet: the QP is the linearisation of each solve."""
        self._qp = None

    @property
    def qp(self) -> CondensedQP:
        """Return the QP of the last RTI iteration (absolute variables, current theta)."""
        if self._qp is None:
            if self._lin is None:
                raise RuntimeError('the QP of the last iteration needs a solve first')
            qp = self.condensed_qp(*self.linearisation())
            qp.set_theta(self.theta)
            self._qp = qp
        return self._qp

    def _qp_set_theta(self, theta: np.ndarray) -> None:
        """Pass theta (94,) to the QP of the last iteration, if one was built."""
        if self._qp is not None:
            self._qp.set_theta(theta)

    # ---------------------------------------------------------------- solving
    def _initial_guess(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Guess ``(xs (N+1 x 12), us (N x 4) solver inputs)``: shifted last solution."""
        horizon = self.config.horizon
        if self._xs is None or self.last is None or not self.last.ok:
            xs = np.tile(x, (horizon + 1, 1))
            us = np.zeros((horizon, NU))
        else:
            xs = np.concatenate([self._xs[1:], self._xs[-1:]])
            us = np.concatenate([self._us[1:], self._us[-1:]])
            xs[0] = x
        return xs, us

    def _run_solver(self, x: np.ndarray) -> tuple[int, int, int]:
        """Run ``rti_iterations`` SQP-RTI iterations from the shifted guess at state x (12,).

        Returns ``(acados status, HPIPM status, HPIPM iterations summed)``; leaves the plan
        in ``self._u_stack`` and records the last iteration's linearisation point.
        """
        solver, cfg = self.solver, self.config
        horizon = cfg.horizon
        xs, us = self._initial_guess(x)
        for k in range(horizon):
            solver.set(k, 'x', xs[k])
            solver.set(k, 'u', us[k])
        solver.set(horizon, 'x', xs[horizon])
        solver.set(0, 'lbx', x)
        solver.set(0, 'ubx', x)
        self._qp = None
        qp_iter_total = 0
        status = qp_status = 0
        done = 0
        step = math.nan
        for _ in range(cfg.rti_iterations):
            self._lin = (xs, us)
            status = solver.solve()
            stats = solver.get_stats('statistics')   # SQP-RTI rows: iter, qp_stat, qp_iter
            qp_status = int(stats[1, -1])
            qp_iter_total += int(stats[2, -1])
            done += 1
            new_xs = np.array([solver.get(k, 'x') for k in range(horizon + 1)])
            new_us = np.array([solver.get(k, 'u') for k in range(horizon)])
            step = float(np.max(np.abs(new_us - us)))
            xs, us = new_xs, new_us
            if status != 0 or qp_status != 0 or step <= cfg.rti_tol:
                break
        self._xs, self._us = xs, us
        self.rti_iterations_done = done
        self.rti_last_step = step
        self._u_stack[:] = (us + self._u_off).reshape(-1)
        return status, qp_status, qp_iter_total

    def predicted_states(self) -> np.ndarray:
        """States (N+1, 12) of the last iterate, from the measured state on."""
        if self._xs is None:
            raise RuntimeError('no solve yet')
        return self._xs.copy()

    # ---------------------------------------------------------------- the linearised QP
    def linearisation_point(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the states (N+1 x 12) and inputs (N x 4) the last QP was linearised at."""
        if self._lin is None:
            raise RuntimeError('no solve yet')
        xs, us = self._lin
        return xs.copy(), us + self._u_off

    def linearisation(self) -> tuple[list, list, list]:
        """Read the stage models of the last QP from acados, in absolute variables.

        Returns lists over k < N of ``A_k`` (12x12), ``B_k`` (12x4), ``c_k`` (12,) with
        ``x[k+1] = A_k x[k] + B_k u[k] + c_k``, ``u`` in absolute rotor speeds (see the
        module docstring for how acados' delta form is converted).
        """
        if self._lin is None:
            raise RuntimeError('no solve yet')
        xs, us = self._lin
        solver = self.solver
        a_list, b_list, c_list = [], [], []
        for k in range(self.config.horizon):
            a_k = solver.get_from_qp_in(k, 'A')
            b_k = solver.get_from_qp_in(k, 'B')
            defect = solver.get_from_qp_in(k, 'b').reshape(-1)
            a_list.append(a_k)
            b_list.append(b_k)
            c_list.append(defect + xs[k + 1] - a_k @ xs[k] - b_k @ (us[k] + self._u_off))
        return a_list, b_list, c_list
