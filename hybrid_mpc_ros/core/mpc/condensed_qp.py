"""The MPC's QP in condensed form, and its exact sensitivities by implicit differentiation.

The MPC (see :mod:`mpc`) with affine dynamics ``x[k+1] = A_k x[k] + B_k u[k] + c_k`` is,
after eliminating the states, a QP in ``U = (u_0, ..., u_{N-1})`` (N*nu)::

    X = (x_1, ..., x_N) = Phi x_0 + Gamma U + w
    J(U) = |X - X_ref|^2_Qbar + |U - U_ref|^2_Rbar + sum_soft (rho2 s^2 + rho1 s)

with ``Qbar = blkdiag(Q, ..., Q, P)``, ``Rbar = blkdiag(R, ..., R)`` and one slack ``s >= 0``
per soft state bound (``s = max(0, violation)`` at the optimum). At a solution, each
constraint is in one of these states, read from the primal solution with tolerance ``tol``:

* input at a bound: the input is fixed there;
* soft state bound strictly violated (``d > tol``): smooth penalty ``rho2 d^2 + rho1 d``;
* soft state bound at the kink (``|d| <= tol``): the state is held at the bound, an
  equality constraint (the linear penalty keeps it there);
* otherwise inactive.

Degenerate (weakly active) constraints, at the bound with a zero multiplier, are therefore
treated as active: the rule is deterministic and gives the one-sided derivative of the
branch in which the constraint stays active (see ``test/core/test_mpc_sensitivity.py``).

With that active set fixed the solution solves the linear KKT system
``K (U_free, lambda) = rhs(x_0, theta)``; differentiating it gives ``du_0/dx_0`` and
``du_0/dtheta``. Only the rows of ``K^-1`` for ``u_0`` are needed, so we solve ``K`` for
``nu`` right-hand sides and contract with the parameter derivatives of the gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from hybrid_mpc_ros.core.mpc import theta as th


def condense(a_list, b_list, c_list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack the dynamics: ``Phi (N*nx x nx)``, ``Gamma (N*nx x N*nu)``, ``w (N*nx,)``.

    ``a_list[k]`` (nx x nx), ``b_list[k]`` (nx x nu), ``c_list[k]`` (nx,) for k < N.
    """
    horizon = len(a_list)
    nx, nu = b_list[0].shape
    phi = np.zeros((horizon * nx, nx))
    gam = np.zeros((horizon * nx, horizon * nu))
    w = np.zeros(horizon * nx)
    prev_phi, prev_w = np.eye(nx), np.zeros(nx)
    prev_gam = np.zeros((nx, horizon * nu))
    for k in range(horizon):
        rows = slice(k * nx, (k + 1) * nx)
        phi[rows] = a_list[k] @ prev_phi
        gam[rows] = a_list[k] @ prev_gam
        gam[rows, k * nu:(k + 1) * nu] = b_list[k]
        w[rows] = a_list[k] @ prev_w + c_list[k]
        prev_phi, prev_gam, prev_w = phi[rows], gam[rows], w[rows]
    return phi, gam, w


@dataclass(frozen=True)
class ActiveSet:
    """Which constraints are active at a solution (see the module docstring).

    ``fixed_inputs``: bool (N*nu,), inputs held at a bound. ``violated``: int indices into
    the stacked states X (N*nx,) with a strictly violated soft bound; ``violation_sign``:
    +1 for an upper, -1 for a lower bound; ``violation_bound``: that bound. ``kinks``:
    indices into X held at a bound.
    """

    fixed_inputs: np.ndarray
    violated: np.ndarray
    violation_sign: np.ndarray
    violation_bound: np.ndarray
    kinks: np.ndarray

    def summary(self) -> dict:
        """Count the active constraints, for diagnostics."""
        return {'inputs_at_bounds': int(self.fixed_inputs.sum()),
                'states_violating': int(self.violated.size),
                'states_at_bounds': int(self.kinks.size)}


def independent_rows(rows: np.ndarray, labels: np.ndarray, rel_tol: float = 1e-9) -> np.ndarray:
    """Return the ``labels`` of a maximal linearly independent subset of ``rows`` (m x n).

    Constraints held active whose rows (restricted to the free inputs) depend on others
    are implied by them; keeping them would make the KKT matrix singular. QR with column
    pivoting on ``rows^T`` picks the subset deterministically; labels come back sorted.
    """
    if rows.shape[0] == 0:
        return labels
    _, r_fac, piv = scipy.linalg.qr(rows.T, mode='economic', pivoting=True)
    diag = np.abs(np.diag(r_fac))
    if diag.size == 0 or diag[0] == 0.0:
        return labels[:0]
    rank = int(np.sum(diag > rel_tol * diag[0]))
    return np.sort(labels[piv[:rank]])


class CondensedQP:
    """The condensed MPC QP for fixed stacked dynamics, with cached theta-dependent parts.

    ``soft_idx`` are the indices of bounded states (soft bounds ``x_lb``, ``x_ub`` on
    stages 1..N), ``u_lb``/``u_ub`` the hard input bounds (nu,). Slack penalty per unit:
    ``rho2 s^2 + rho1 s``.
    """

    def __init__(self, phi, gam, w, nx, nu, soft_idx, x_lb, x_ub, u_lb, u_ub,
                 rho2, rho1):
        self.phi, self.gam, self.w = phi, gam, w
        self.nx, self.nu = nx, nu
        self.horizon = gam.shape[1] // nu
        n_states = self.horizon * nx
        self.rho2, self.rho1 = float(rho2), float(rho1)
        self.u_lb = np.tile(u_lb, self.horizon)
        self.u_ub = np.tile(u_ub, self.horizon)
        lb = np.full(nx, -np.inf)
        ub = np.full(nx, np.inf)
        lb[soft_idx], ub[soft_idx] = x_lb, x_ub
        self.x_lb = np.tile(lb, self.horizon)
        self.x_ub = np.tile(ub, self.horizon)
        self.gam3 = gam.reshape(self.horizon, nx, -1)
        self.n_states = n_states
        self._theta = None

    def set_theta(self, theta: np.ndarray) -> None:
        """Cache the Hessian and x0-gradient parts that depend only on theta (94,)."""
        q_mat, r_mat, p_mat = th.weights(theta)
        self._theta = np.array(theta, dtype=float)
        self.p_q, self.p_r, p_p = th.split(self._theta)
        self.low = th.lower_factor(p_p)
        self.q_mat, self.r_mat, self.p_mat = q_mat, r_mat, p_mat
        qbar_gam = np.empty_like(self.gam3)
        qbar_gam[:-1] = q_mat @ self.gam3[:-1]
        qbar_gam[-1] = p_mat @ self.gam3[-1]
        qbar_gam = qbar_gam.reshape(self.n_states, -1)
        self.qbar_gam = qbar_gam                  # Qbar Gamma, (N*nx x N*nu)
        self.hess_theta = 2.0 * (self.gam.T @ qbar_gam)
        self.hess_theta[np.diag_indices_from(self.hess_theta)] += 2.0 * np.tile(
            np.diag(r_mat), self.horizon)
        self.grad_x0_theta = 2.0 * (qbar_gam.T @ self.phi)   # d(gradient)/dx0, (N*nu x nx)

    def states(self, x0: np.ndarray, u_stack: np.ndarray) -> np.ndarray:
        """Stacked predicted states X (N*nx,) for x0 (nx,) and U (N*nu,)."""
        return self.phi @ x0 + self.gam @ u_stack + self.w

    def active_set(self, x0, u_stack, tol_u: float, tol_x: float) -> ActiveSet:
        """Classify the constraints at the solution U (N*nu,) from x0 (nx,)."""
        xs = self.states(x0, u_stack)
        fixed = (u_stack <= self.u_lb + tol_u) | (u_stack >= self.u_ub - tol_u)
        over = xs - self.x_ub
        under = self.x_lb - xs
        viol_up = np.flatnonzero(over > tol_x)
        viol_lo = np.flatnonzero(under > tol_x)
        kinks = np.flatnonzero((np.abs(over) <= tol_x) | (np.abs(under) <= tol_x))
        violated = np.concatenate([viol_up, viol_lo])
        sign = np.concatenate([np.ones(viol_up.size), -np.ones(viol_lo.size)])
        bound = np.concatenate([self.x_ub[viol_up], self.x_lb[viol_lo]])
        return ActiveSet(fixed, violated, sign, bound, kinks)

    def sensitivities(self, x0, u_stack, x_ref, u_ref, active: ActiveSet, offsets=None):
        """``(du_0/dx_0 (nu x nx), du_0/dtheta (nu x 94))`` at the solution U (N*nu,).

        ``x_ref`` (nx,) and ``u_ref`` (nu,) are the cost references. Raises
        ``numpy.linalg.LinAlgError`` if the reduced KKT matrix is singular (too many
        constraints held active, e.g. an inconsistent active set).

        ``offsets``: for m further parameters p that shift the predicted states and the
        references, ``(dX/dp (N*nx x m) at fixed U, dX_ref/dp (N*nx x m), dU_ref/dp
        (N*nu x m))``; then ``du_0/dp`` (nu x m) is returned as a third array (the
        offset-free MPC's disturbance, :mod:`offset_free`).
        """
        nu, nx = self.nu, self.nx
        free = ~active.fixed_inputs
        hess = self.hess_theta
        grad_x0 = self.grad_x0_theta
        if active.violated.size:
            gam_v = self.gam[active.violated]
            hess = hess + 2.0 * self.rho2 * gam_v.T @ gam_v
            grad_x0 = grad_x0 + 2.0 * self.rho2 * gam_v.T @ self.phi[active.violated]
        free_idx = np.flatnonzero(free)
        n_free = free_idx.size
        kinks = independent_rows(self.gam[active.kinks][:, free_idx], active.kinks)
        g_kink = self.gam[kinks][:, free_idx]
        n_kink = g_kink.shape[0]
        sel = free_idx[free_idx < nu]                 # free entries of u_0
        out_x = np.zeros((nu, nx))
        out_t = np.zeros((nu, th.N_THETA))
        out_p = None if offsets is None else np.zeros((nu, offsets[0].shape[1]))
        if sel.size == 0 or n_kink >= n_free:         # u_0 pinned by bounds / constraints
            return (out_x, out_t) if out_p is None else (out_x, out_t, out_p)
        kkt = np.zeros((n_free + n_kink, n_free + n_kink))
        kkt[:n_free, :n_free] = hess[np.ix_(free_idx, free_idx)]
        kkt[n_free:, :n_free] = g_kink
        kkt[:n_free, n_free:] = g_kink.T
        rhs = np.zeros((n_free + n_kink, sel.size))
        rhs[np.arange(sel.size), np.arange(sel.size)] = 1.0
        if n_kink:
            y = scipy.linalg.solve(kkt, rhs, assume_a='sym', check_finite=False)
        else:
            y = scipy.linalg.solve(kkt, rhs, assume_a='pos', check_finite=False)
        y_u = np.zeros((u_stack.size, sel.size))
        y_u[free_idx] = y[:n_free]
        y_lam = y[n_free:]
        # d(stationarity)/dp contracted with the u_0 rows of K^-1; du0 = -(that)
        du_dx = y_u.T @ grad_x0
        if n_kink:
            du_dx += y_lam.T @ self.phi[kinks]
        du_dtheta = self._theta_terms(x0, u_stack, x_ref, u_ref, y_u)
        out_x[sel] = -du_dx
        out_t[sel] = -du_dtheta
        if out_p is None:
            return out_x, out_t
        out_p[sel] = -self._offset_terms(offsets, active, kinks, y_u, y_lam)
        return out_x, out_t, out_p

    def _offset_terms(self, offsets, active: ActiveSet, kinks, y_u, y_lam):
        """``Y^T d(KKT rhs)/dp`` (k x m) for the ``offsets`` of :meth:`sensitivities`."""
        d_states, d_xref, d_uref = offsets
        # stationarity: 2 Gamma^T Qbar (X - X_ref) + 2 Rbar (U - U_ref) + slack terms
        grad_p = 2.0 * (self.qbar_gam.T @ (d_states - d_xref))
        grad_p -= 2.0 * np.tile(np.diag(self.r_mat), self.horizon)[:, None] * d_uref
        if active.violated.size:
            grad_p += 2.0 * self.rho2 * self.gam[active.violated].T @ d_states[active.violated]
        out = y_u.T @ grad_p
        if kinks.size:
            out += y_lam.T @ d_states[kinks]          # a held state moves with p at fixed U
        return out

    def _theta_terms(self, x0, u_stack, x_ref, u_ref, y_u):
        """``Y_U^T d(gradient)/dtheta`` (k x 94) for Y_U (N*nu x k), via Z = Gamma Y_U."""
        horizon, nx, nu = self.horizon, self.nx, self.nu
        k = y_u.shape[1]
        dev_x = (self.states(x0, u_stack) - np.tile(x_ref, horizon)).reshape(horizon, nx)
        dev_u = (u_stack - np.tile(u_ref, horizon)).reshape(horizon, nu)
        z = (self.gam @ y_u).reshape(horizon, nx, k)
        out = np.empty((k, th.N_THETA))
        # Q = diag(p_Q^2): gradient 2 Gamma^T blkdiag(Q) (X - X_ref) over stages 1..N-1
        out[:, th.SLICE_Q] = (4.0 * self.p_q[:, None]
                              * np.einsum('kij,ki->ij', z[:-1], dev_x[:-1])).T
        # R = diag(p_R^2): gradient 2 Rbar (U - U_ref)
        y3 = y_u.reshape(horizon, nu, k)
        out[:, th.SLICE_R] = (4.0 * self.p_r[:, None]
                              * np.einsum('kij,ki->ij', y3, dev_u)).T
        # P = L L^T: d(P d)/dL_ab = e_a (L^T d)_b + L e_b d_a, at the terminal stage
        d_n = dev_x[-1]
        z_n = z[-1]                                   # (nx, k)
        m = self.low.T @ d_n                          # (nx,)
        n_mat = self.low.T @ z_n                      # (nx, k)
        rows, cols = th.TRIL
        out[:, th.SLICE_P] = 2.0 * (z_n[rows] * m[cols, None]
                                    + n_mat[cols] * d_n[rows, None]).T
        return out

    def tracking_gradient(self, x0, u_stack, x_ref, u_ref) -> np.ndarray:
        """Gradient (N*nu,) of the tracking part of J (slack penalties excluded) at U."""
        horizon = self.horizon
        dev = (self.states(x0, u_stack) - np.tile(x_ref, horizon)).reshape(horizon, self.nx)
        weighted = np.empty_like(dev)
        weighted[:-1] = dev[:-1] @ self.q_mat
        weighted[-1] = self.p_mat @ dev[-1]
        return (2.0 * self.gam.T @ weighted.reshape(-1)
                + 2.0 * np.tile(np.diag(self.r_mat), horizon)
                * (u_stack - np.tile(u_ref, horizon)))
