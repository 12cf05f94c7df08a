"""The MPC policy: an acados OCP on the nominal model, with exact sensitivities.

Formulation (the paper's experiment), horizon N, nominal dynamics ``x+ = A x + B u + c``::

    min   sum_{k<N} |x_k - x_ref|^2_Q + |u_k - u_ref|^2_R + |x_N - x_ref|^2_P
          + sum_{k=1..N} sum_i (rho2 s_ki^2 + rho1 s_ki)          (soft state bounds)
    s.t.  x_0 = measured state,  u_min <= u_k <= u_max (hard),
          x_lb - s_k <= x_k[soft] <= x_ub + s_k, s_k >= 0

with ``(Q, R, P)`` from theta (:mod:`theta`). In acados terms: discrete dynamics, a
LINEAR_LS cost with ``W = blkdiag(2Q, 2R)`` and ``W_e = 2P`` (acados halves the norm), slack
weights ``Z = 2 rho2`` and ``z = rho1``, one SQP-RTI iteration with HPIPM; for this
linear-quadratic problem a single QP solve is the exact optimum. theta, the reference and
the initial state are runtime data: changing them never regenerates code.

The sensitivities come from :mod:`condensed_qp` (implicit differentiation of the QP's
KKT conditions with the active set read from the acados solution).

Why one module of about 430 lines: the OCP's set-up, its solve with the status checks and
the assembly of the sensitivities all work on one acados solver object and its layout;
apart, they would pass that state between files.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import hashlib
import math
import time

import numpy as np

from hybrid_mpc_ros.core.mpc import acados_env
from hybrid_mpc_ros.core.mpc import theta as th
from hybrid_mpc_ros.core.mpc.condensed_qp import ActiveSet, CondensedQP, condense
from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.model.nominal_model import AffineModel
from hybrid_mpc_ros.core.model.quadcopter import NU, NX

SOFT_IDX = tuple(range(3, NX))       # velocities, Euler angles, body rates

# acados status codes (acados_c/ocp_nlp_interface): 0 success, 1 NaN, 2 max iter,
# 3 min step, 4 QP failure, 5 ready (RTI preparation only)
STATUS_TEXT = {0: 'success', 1: 'NaN detected', 2: 'maximum iterations reached',
               3: 'minimum step size', 4: 'QP solver failed', 5: 'not solved yet'}


@dataclass(frozen=True)
class MPCConfig:
    """Static MPC configuration (changing it means new generated code).

    The experiment's values have no defaults: they come from a scenario file
    (:meth:`hybrid_mpc_ros.core.scenario.Scenario.mpc_config`). ``horizon`` N; ``dt`` [s];
    hard rotor-speed bounds ``u_min``, ``u_max`` [rad/s]; soft bounds ``x_lb``, ``x_ub``
    (9 each) on the states ``SOFT_IDX`` (3..11: velocity, attitude, body rates);
    ``u_offset`` (4) [rad/s], the input the solver's variables are measured from (the
    scenario's ``u_ref``); slack penalty weights. The QP solver's numerical settings keep
    their defaults here: they are properties of this solver, not of an experiment.
    """

    horizon: int
    dt: float
    u_min: float
    u_max: float
    x_lb: tuple
    x_ub: tuple
    u_offset: tuple          # acados works with u - u_offset (scaling, see _make_ocp)
    slack_quadratic: float
    slack_linear: float
    qp_tol: float = 1e-10
    qp_iter_max: int = 100
    hpipm_mode: str = 'BALANCE'
    qp_warm_start: int = 0
    active_tol_u: float = 1e-6     # rad/s: an input this close to a bound is held there
    active_tol_x: float = 1e-7     # state units: a soft bound this close is at its kink

    def __post_init__(self):
        if self.horizon < 1:
            raise ConfigError(f'horizon must be >= 1, got {self.horizon}')
        if not self.dt > 0:
            raise ConfigError(f'dt must be > 0, got {self.dt}')
        if not self.u_max > self.u_min:
            raise ConfigError('u_max must exceed u_min')
        if len(self.x_lb) != len(SOFT_IDX) or len(self.x_ub) != len(SOFT_IDX):
            raise ConfigError(f'x_lb/x_ub need {len(SOFT_IDX)} entries (states 3..11)')
        if any(lo >= hi for lo, hi in zip(self.x_lb, self.x_ub)):
            raise ConfigError('every soft state bound needs x_lb < x_ub')
        if len(self.u_offset) != NU or not all(math.isfinite(v) for v in self.u_offset):
            raise ConfigError(f'u_offset needs {NU} finite entries, got {self.u_offset}')

    def state_box(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the state constraint set X as full bounds ``(lb (12,), ub (12,))``.

        Unbounded states (positions) get -inf / +inf.
        """
        lb, ub = np.full(NX, -np.inf), np.full(NX, np.inf)
        lb[list(SOFT_IDX)], ub[list(SOFT_IDX)] = self.x_lb, self.x_ub
        return lb, ub


@dataclass(frozen=True)
class MPCSolution:
    """What one :meth:`MPCPolicy.solve` returns (frozen: later calls never edit it).

    ``u`` (4,) is always finite and within the input bounds. When ``ok`` is False the
    solver failed (``status``, ``message``) and ``u`` is the fallback input (the reference
    input, clipped); the caller decides what to do (the controller node, for example,
    publishes it and reports the failure). ``solve_ms`` is the wall time of the solver call,
    setting the initial state and reading the plan included.
    """

    u: np.ndarray
    ok: bool
    status: int
    message: str
    solve_ms: float
    qp_iter: int = 0


class MPCPolicy:
    """``u = MPC(x; theta)`` with ``sensitivities() -> (du/dx 4x12, du/dtheta 4x94)``.

    Narrow interface used by the tuner and the controller node: ``solve(x)``,
    ``sensitivities()``, ``set_theta(theta)``, ``set_reference(x_ref, u_ref)``, ``theta``,
    ``last`` (the last :class:`MPCSolution`) and ``timings``.

    Built from the nominal ``model`` (affine, or linear with ``c = 0``), ``config``, the
    starting ``theta`` (94,) and the references ``x_ref`` (12,), ``u_ref`` (4,);
    :meth:`hybrid_mpc_ros.core.scenario.Scenario.policy` builds one from a scenario file.
    """

    def __init__(self, model: AffineModel, config: MPCConfig, theta: np.ndarray,
                 x_ref: np.ndarray, u_ref: np.ndarray):
        self.model = model
        if abs(model.dt - config.dt) > 1e-12:
            raise ConfigError(f'nominal model dt {model.dt} differs from MPC dt {config.dt}')
        self._start(config, theta, x_ref, u_ref)

    def _start(self, config: MPCConfig, theta: np.ndarray, x_ref: np.ndarray,
               u_ref: np.ndarray) -> None:
        """Set up what every model kind shares: references, bounds, QP, solver, theta.

        ``theta`` (94,), ``x_ref`` (12,), ``u_ref`` (4,).
        """
        self.config = cfg = config
        self.x_ref = np.array(x_ref, dtype=float)
        self.u_ref = np.array(u_ref, dtype=float)
        self._u_off = np.array(cfg.u_offset, dtype=float)
        self._u_lb = np.full(NU, cfg.u_min)
        self._u_ub = np.full(NU, cfg.u_max)
        self._init_qp()
        start = time.perf_counter()
        self.solver = acados_env.cached_ocp_solver(self.formulation_key(), self._make_ocp)
        self.timings = {'build_s': time.perf_counter() - start}
        self._u_stack = np.zeros(cfg.horizon * NU)
        self._x0 = np.zeros(NX)
        self._sens = None
        self.last: MPCSolution | None = None
        self.theta = theta
        self.set_theta(theta)
        self.set_reference(self.x_ref, self.u_ref)

    def condensed_qp(self, a_list, b_list, c_list) -> CondensedQP:
        """Build the MPC's QP for affine stage dynamics ``x+ = A_k x + B_k u + c_k`` (k < N).

        ``a_list[k]`` (12x12), ``b_list[k]`` (12x4), ``c_list[k]`` (12,), in absolute
        rotor speeds; bounds and slack weights from the configuration, theta not yet set.
        """
        cfg = self.config
        return CondensedQP(*condense(a_list, b_list, c_list), NX, NU, np.array(SOFT_IDX),
                           np.array(cfg.x_lb), np.array(cfg.x_ub), self._u_lb, self._u_ub,
                           cfg.slack_quadratic, cfg.slack_linear)

    def _init_qp(self) -> None:
        """Build the QP used for active sets and sensitivities (fixed for an affine model)."""
        mdl, horizon = self.model, self.config.horizon
        self.qp = self.condensed_qp([mdl.A] * horizon, [mdl.B] * horizon, [mdl.c] * horizon)

    # ---------------------------------------------------------------- formulation
    def formulation_key(self) -> str:
        """Hash of everything that is compiled into the solver."""
        digest = hashlib.sha256()
        for arr in (self.model.A, self.model.B, self.model.c):
            digest.update(np.ascontiguousarray(arr).tobytes())
        description = dict(asdict(self.config), model=digest.hexdigest(), kind='affine',
                           soft_idx=SOFT_IDX, version=3)
        return acados_env.formulation_key(description)

    def _make_ocp(self, code_dir: str):
        """Build the AcadosOcp (only called when the solver is not cached)."""
        import casadi as ca
        at = acados_env.acados_template()
        cfg = self.config
        ocp = at.AcadosOcp()
        model = at.AcadosModel()
        model.name = 'hmpc_' + self.formulation_key()[:10]
        x = ca.SX.sym('x', NX)
        u = ca.SX.sym('u', NU)
        model.x, model.u = x, u
        # the solver's input is du = u - u_offset: rotor speeds sit near 620 rad/s and an
        # interior-point QP reaches a far tighter absolute accuracy on deviations from hover
        model.disc_dyn_expr = self._dynamics_expr(x, u)
        ocp.model = model
        ocp.dims.N = cfg.horizon
        ny = NX + NU
        ocp.cost.cost_type = 'LINEAR_LS'
        ocp.cost.cost_type_e = 'LINEAR_LS'
        ocp.cost.Vx = np.vstack([np.eye(NX), np.zeros((NU, NX))])
        ocp.cost.Vu = np.vstack([np.zeros((NX, NU)), np.eye(NU)])
        ocp.cost.Vx_e = np.eye(NX)
        ocp.cost.W = np.eye(ny)
        ocp.cost.W_e = np.eye(NX)
        ocp.cost.yref = np.zeros(ny)
        ocp.cost.yref_e = np.zeros(NX)
        n_soft = len(SOFT_IDX)
        cons = ocp.constraints
        cons.x0 = np.zeros(NX)
        cons.idxbu = np.arange(NU)
        cons.lbu, cons.ubu = self._u_lb - self._u_off, self._u_ub - self._u_off
        cons.idxbx = np.array(SOFT_IDX)
        cons.lbx, cons.ubx = np.array(cfg.x_lb), np.array(cfg.x_ub)
        cons.idxsbx = np.arange(n_soft)
        cons.idxbx_e = np.array(SOFT_IDX)
        cons.lbx_e, cons.ubx_e = np.array(cfg.x_lb), np.array(cfg.x_ub)
        cons.idxsbx_e = np.arange(n_soft)
        for suffix in ('', '_e'):
            setattr(ocp.cost, 'Zl' + suffix, np.full(n_soft, 2.0 * cfg.slack_quadratic))
            setattr(ocp.cost, 'Zu' + suffix, np.full(n_soft, 2.0 * cfg.slack_quadratic))
            setattr(ocp.cost, 'zl' + suffix, np.full(n_soft, cfg.slack_linear))
            setattr(ocp.cost, 'zu' + suffix, np.full(n_soft, cfg.slack_linear))
        opts = ocp.solver_options
        # acados multiplies stage costs (slacks included) by the time step; with discrete
        # dynamics the step is only that factor, so unit steps keep the cost as written
        opts.tf = float(cfg.horizon)
        opts.integrator_type = 'DISCRETE'
        opts.nlp_solver_type = 'SQP_RTI'
        opts.qp_solver = 'PARTIAL_CONDENSING_HPIPM'
        opts.hpipm_mode = cfg.hpipm_mode
        opts.qp_solver_warm_start = cfg.qp_warm_start
        opts.qp_solver_iter_max = cfg.qp_iter_max
        opts.qp_solver_tol_stat = cfg.qp_tol
        opts.qp_solver_tol_eq = cfg.qp_tol
        opts.qp_solver_tol_ineq = cfg.qp_tol
        opts.qp_solver_tol_comp = cfg.qp_tol
        opts.hessian_approx = 'GAUSS_NEWTON'
        opts.print_level = 0
        ocp.code_export_directory = code_dir
        return ocp

    def _dynamics_expr(self, x, u):
        """Next state (CasADi, 12) from state x (12) and solver input ``u - u_offset`` (4)."""
        import casadi as ca
        mdl = self.model
        return ca.DM(mdl.A) @ x + ca.DM(mdl.B) @ u + ca.DM(mdl.c + mdl.B @ self._u_off)

    # ---------------------------------------------------------------- runtime data
    def set_theta(self, theta: np.ndarray) -> None:
        """Use new cost parameters theta (94,); raises ValueError if not finite."""
        theta = np.array(theta, dtype=float)
        if theta.shape != (th.N_THETA,):
            raise ValueError(f'theta must have {th.N_THETA} entries, got {theta.shape}')
        if not np.all(np.isfinite(theta)):
            raise ValueError('theta has non-finite entries: ' + ', '.join(
                th.names()[i] for i in np.flatnonzero(~np.isfinite(theta))))
        q_mat, r_mat, p_mat = th.weights(theta)
        w_stage = np.zeros((NX + NU, NX + NU))
        w_stage[:NX, :NX] = 2.0 * q_mat
        w_stage[NX:, NX:] = 2.0 * r_mat
        for k in range(self.config.horizon):
            self.solver.cost_set(k, 'W', w_stage)
        self.solver.cost_set(self.config.horizon, 'W', 2.0 * p_mat)
        self.theta = theta
        self._qp_set_theta(theta)
        self._sens = None

    def _qp_set_theta(self, theta: np.ndarray) -> None:
        """Pass theta (94,) to the QP used for sensitivities."""
        self.qp.set_theta(theta)

    def set_reference(self, x_ref: np.ndarray, u_ref: np.ndarray | None = None) -> None:
        """Track ``x_ref`` (12,) with input reference ``u_ref`` (4,, default unchanged)."""
        x_ref = np.array(x_ref, dtype=float)
        u_ref = self.u_ref if u_ref is None else np.array(u_ref, dtype=float)
        if x_ref.shape != (NX,) or u_ref.shape != (NU,):
            raise ValueError('x_ref must have 12 and u_ref 4 entries')
        if not (np.all(np.isfinite(x_ref)) and np.all(np.isfinite(u_ref))):
            raise ValueError('reference has non-finite entries')
        self.x_ref, self.u_ref = x_ref, u_ref
        yref = np.concatenate([x_ref, u_ref - self._u_off])
        for k in range(self.config.horizon):
            self.solver.set(k, 'yref', yref)
        self.solver.set(self.config.horizon, 'yref', x_ref)
        self._sens = None

    # ---------------------------------------------------------------- solving
    def reset(self) -> None:
        """Forget the solver's iterate (warm start), e.g. before an episode.

        After a reset a sequence of solves depends only on the states, theta and the
        reference, so episodes rerun bit for bit.
        """
        self.solver.reset()
        self._sens = None
        self.last = None

    def solve(self, x: np.ndarray) -> MPCSolution:
        """First input of the MPC plan from state x (12,); see :class:`MPCSolution`."""
        x = np.asarray(x, dtype=float)
        self._sens = None
        fallback = np.clip(self.u_ref, self._u_lb, self._u_ub)
        if x.shape != (NX,) or not np.all(np.isfinite(x)):
            self.last = MPCSolution(fallback, False, -1, 'state is malformed or non-finite',
                                    0.0)
            return self.last
        start = time.perf_counter()
        status, qp_status, qp_iter = self._run_solver(x)
        solve_ms = (time.perf_counter() - start) * 1e3
        u_stack = self._u_stack
        u0 = u_stack[:NU].copy()
        if status == 0 and qp_status != 0:
            status = 4          # acados' RTI reports success even when HPIPM did not converge
        ok = status == 0 and bool(np.all(np.isfinite(u_stack)))
        if ok:
            # HPIPM is an interior-point method: its iterate may sit ~tol inside a bound
            u0 = np.clip(u0, self._u_lb, self._u_ub)
            message = 'success'
        else:
            message = (f'acados status {status}: {STATUS_TEXT.get(status, "unknown")} '
                       f'(HPIPM status {qp_status} after {qp_iter} iterations)')
            u0 = fallback
            self.solver.reset()
        self._x0 = x.copy()
        self.last = MPCSolution(u0, ok, int(status), message, solve_ms, qp_iter=qp_iter)
        return self.last

    def _run_solver(self, x: np.ndarray) -> tuple[int, int, int]:
        """Solve from state x (12,): ``(acados status, HPIPM status, HPIPM iterations)``.

        Leaves the input plan in absolute rotor speeds in ``self._u_stack`` (N*4,).
        """
        solver = self.solver
        solver.set(0, 'lbx', x)
        solver.set(0, 'ubx', x)
        status = solver.solve()
        u_stack = self._u_stack
        for k in range(self.config.horizon):
            u_stack[k * NU:(k + 1) * NU] = solver.get(k, 'u')
        plan = u_stack.reshape(self.config.horizon, NU)     # a view: adds in place
        plan += self._u_off
        stats = solver.get_stats('statistics')       # SQP-RTI rows: iter, qp_stat, qp_iter
        return status, int(stats[1, -1]), int(stats[2, -1])

    def active_set(self) -> ActiveSet:
        """Active constraints of the last successful :meth:`solve` (see :mod:`condensed_qp`)."""
        if self.last is None or not self.last.ok:
            raise RuntimeError('the active set needs a successful solve first')
        cfg = self.config
        return self.qp.active_set(self._x0, self._u_stack, cfg.active_tol_u, cfg.active_tol_x)

    def sensitivities(self) -> tuple[np.ndarray, np.ndarray]:
        """``(du/dx (4x12), du/dtheta (4x94))`` of the last successful :meth:`solve`.

        Computed once per solve and cached; the arrays are read-only because every later
        call returns the same objects (copy them to keep or edit them).
        """
        if self._sens is None:
            du_dx, du_dtheta = self.qp.sensitivities(self._x0, self._u_stack, self.x_ref,
                                                     self.u_ref, self.active_set())
            du_dx.flags.writeable = False
            du_dtheta.flags.writeable = False
            self._sens = du_dx, du_dtheta
        return self._sens

    def active_summary(self) -> dict:
        """Count the active constraints of the last successful :meth:`solve`.

        Keys ``inputs_at_bounds``, ``states_violating``, ``states_at_bounds`` (see
        :meth:`ActiveSet.summary`); derived from the stored solve on each call, so neither
        :meth:`sensitivities` nor this method edits the returned :class:`MPCSolution`.
        """
        return self.active_set().summary()

    def plan(self) -> np.ndarray:
        """Return the last solution's input plan, shape (N, 4)."""
        return self._u_stack.reshape(self.config.horizon, NU).copy()

    def predicted_states(self) -> np.ndarray:
        """States (N+1, 12) the last solution predicts, from the measured state on."""
        predicted = self.qp.states(self._x0, self._u_stack).reshape(self.config.horizon, NX)
        return np.vstack([self._x0, predicted])


def finite_difference_sensitivities(policy: MPCPolicy, x: np.ndarray, step: float = 1e-5):
    """Central differences of ``policy.solve`` at state x (12,) and its current theta.

    Returns ``(du/dx (4x12), du/dtheta (4x94), same_active_set)``; ``same_active_set`` is
    False when some perturbation changed the active set (the differences then straddle a
    kink of the policy and are not a derivative). theta steps are ``step * max(1, |theta_i|)``.
    Costs 2 * (12 + 94) solves; the policy is left at its original theta.
    """
    theta = policy.theta.copy()

    def solve_key(state):
        sol = policy.solve(state)
        if not sol.ok:
            raise RuntimeError(f'finite differences: solve failed ({sol.message})')
        act = policy.active_set()
        return sol.u, (act.fixed_inputs.tobytes(), act.violated.tobytes(), act.kinks.tobytes())

    _, key = solve_key(x)
    same = True
    fd_x = np.empty((NU, NX))
    for i in range(NX):
        e = np.zeros(NX)
        e[i] = step
        (u_up, k_up), (u_dn, k_dn) = solve_key(x + e), solve_key(x - e)
        same &= k_up == key and k_dn == key
        fd_x[:, i] = (u_up - u_dn) / (2 * step)
    fd_t = np.empty((NU, th.N_THETA))
    try:
        for i in range(th.N_THETA):
            h = step * max(1.0, abs(theta[i]))
            outs = []
            for sign in (1.0, -1.0):
                perturbed = theta.copy()
                perturbed[i] += sign * h
                policy.set_theta(perturbed)
                u, k = solve_key(x)
                same &= k == key
                outs.append(u)
            fd_t[:, i] = (outs[0] - outs[1]) / (2 * h)
    finally:
        policy.set_theta(theta)
    policy.solve(x)
    return fd_x, fd_t, bool(same)
