"""Gradient estimates of the closed-loop cost C(theta).

* :func:`model_based_gradient`: forward sensitivity recursion over the *measured*
  trajectory through a nominal model's Jacobians ``(G_x, G_u)``.
* :func:`zeroth_order_gradient`: one-direction forward-difference estimate with a
  direction uniform on the unit sphere; :func:`averaged_zeroth_order_gradient` the mean
  of M of them (directions from :func:`zeroth_order_directions`, antithetic or not).
* :func:`hybrid_direction`: their mix ``(1 - eta) G_zo + eta J_C``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from hybrid_mpc_ros.core.learning.episode import EpisodeRecord
from hybrid_mpc_ros.core.learning.objective import ClosedLoopCost
from hybrid_mpc_ros.core.mpc.offset_free import DisturbanceObserver

Jacobians = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def model_based_gradient(record: EpisodeRecord, cost: ClosedLoopCost,
                         jacobians: Jacobians, observer_model=None) -> np.ndarray:
    """``J_C`` (94,): dC/dtheta chained through ``jacobians(x, u) -> (G_x, G_u)``.

    Recursion (``S_t`` = dx_t/dtheta, 12 x 94)::

        S_0 = 0
        dU_t = K_x[t] S_t + K_theta[t]
        S_{t+1} = G_x(x_t, u_t) S_t + G_u(x_t, u_t) dU_t
        J_C = sum_t dc/dx_t S_t + dc/du_t dU_t  (+ terminal and violation terms)

    With the plant's own Jacobians this is the exact gradient of C along the episode.

    An offset-free episode (``record.offset_free``) needs ``observer_model``, the nominal
    model (:class:`~hybrid_mpc_ros.core.model.nominal_model.AffineModel`) the controller's
    observer predicts with; its gain is the record's. The closed-loop state is then
    ``(x, d)``: see :func:`offset_free_gradient`.
    """
    if record.offset_free:
        if observer_model is None:
            raise ValueError('an offset-free episode needs the nominal model of the '
                             'controller\'s disturbance observer for its model-based '
                             'gradient')
        observer = DisturbanceObserver(observer_model, record.observer_gain)
        return offset_free_gradient(record, cost, jacobians, observer)
    gx, gu = cost.gradients(record.x, record.u)
    sens = np.zeros((record.x.shape[1], record.du_dtheta.shape[2]))
    grad = np.zeros(record.du_dtheta.shape[2])
    for t in range(record.steps):
        d_u = record.du_dx[t] @ sens + record.du_dtheta[t]
        grad += gx[t] @ sens + gu[t] @ d_u
        g_x, g_u = jacobians(record.x[t], record.u[t])
        sens = g_x @ sens + g_u @ d_u
    grad += gx[-1] @ sens
    return grad


def offset_free_gradient(record: EpisodeRecord, cost: ClosedLoopCost, jacobians: Jacobians,
                         observer) -> np.ndarray:
    """``J_C`` (94,) of an offset-free episode: the state is ``(x_t, d_t)``.

    ``observer`` is a :class:`~hybrid_mpc_ros.core.mpc.offset_free.DisturbanceObserver`.
    ``d_t`` is the estimate step t used; the observer made it from the step before,
    ``d_t = F d_{t-1} + L_x x_t + L_p x_{t-1} + L_u u_{t-1} + const`` for t >= 1 and
    ``d_0`` the reset value (``observer.jacobians() -> (F, L_x, L_p, L_u)``). Recursion
    (``S_t`` = dx_t/dtheta 12 x 94, ``D_t`` = dd_t/dtheta 12 x 94)::

        S_0 = 0, D_0 = 0
        D_t = F D_{t-1} + L_x S_t + L_p S_{t-1} + L_u dU_{t-1}        (t >= 1)
        dU_t = K_x[t] S_t + K_d[t] D_t + K_theta[t]
        S_{t+1} = G_x(x_t, u_t) S_t + G_u(x_t, u_t) dU_t

    with ``K_d = record.du_dd``; the cost terms as in :func:`model_based_gradient`. The
    observer's Jacobians are exact (it is the controller's own law); only ``(G_x, G_u)``
    are a model's. It assumes the estimate was updated at every step after the first, as
    in :func:`~hybrid_mpc_ros.core.learning.episode.rollout`.
    """
    f_d, l_x, l_p, l_u = observer.jacobians()
    gx, gu = cost.gradients(record.x, record.u)
    n_theta = record.du_dtheta.shape[2]
    sens = np.zeros((record.x.shape[1], n_theta))
    sens_d = np.zeros((f_d.shape[0], n_theta))
    grad = np.zeros(n_theta)
    prev = None                                 # (S_{t-1}, dU_{t-1})
    for t in range(record.steps):
        if prev is not None:
            sens_d = f_d @ sens_d + l_x @ sens + l_p @ prev[0] + l_u @ prev[1]
        d_u = record.du_dx[t] @ sens + record.du_dd[t] @ sens_d + record.du_dtheta[t]
        grad += gx[t] @ sens + gu[t] @ d_u
        g_x, g_u = jacobians(record.x[t], record.u[t])
        prev = sens, d_u
        sens = g_x @ sens + g_u @ d_u
    grad += gx[-1] @ sens
    return grad


def sample_unit_sphere(rng: np.random.Generator, dim: int) -> np.ndarray:
    """Draw a direction (dim,) uniform on the unit sphere (normalised Gaussian)."""
    v = rng.standard_normal(dim)
    return v / np.linalg.norm(v)


def zeroth_order_gradient(cost_perturbed: float, cost_base: float, direction: np.ndarray,
                          delta: float) -> np.ndarray:
    """``G_zo = (n / delta) (C(theta + delta v) - C(theta)) v`` for v (n,) on the sphere."""
    return (direction.size / delta) * (cost_perturbed - cost_base) * direction


def zeroth_order_directions(rng: np.random.Generator, dim: int, count: int,
                            antithetic: bool = False) -> np.ndarray:
    """Draw ``count`` directions (count, dim) for the zeroth-order estimate.

    Independent and uniform on the sphere, or with ``antithetic`` in pairs ``v, -v``
    (``count`` even; ``count / 2`` draws). One direction is exactly one
    :func:`sample_unit_sphere` draw, so a run with one direction draws what it always did.
    """
    if count < 1 or (antithetic and count % 2):
        raise ValueError(f'the zeroth-order estimate needs at least one direction, and an even '
                         f'number when antithetic; got {count} (antithetic {antithetic})')
    if not antithetic:
        return np.array([sample_unit_sphere(rng, dim) for _ in range(count)])
    halves = [sample_unit_sphere(rng, dim) for _ in range(count // 2)]
    return np.array([v * sign for v in halves for sign in (1.0, -1.0)])


def averaged_zeroth_order_gradient(costs_perturbed, cost_base: float, directions: np.ndarray,
                                   delta: float) -> np.ndarray:
    """Mean of :func:`zeroth_order_gradient` over the rows of ``directions`` (M, n).

    ``costs_perturbed[i] = C(theta + delta v_i)``. Each term's expectation over v uniform
    on the sphere is the gradient of the delta-smoothed cost ``C_delta(theta) = E_u
    C(theta + delta u)`` (u uniform in the ball); so is their mean, whether the v_i are
    independent or antithetic pairs (each row is still uniform on the sphere): the
    estimate stays unbiased for the same target, which is what the method's convergence
    conditions ask of it, and its variance (the second moment they bound) does not grow.
    M independent directions divide the variance of the estimate by M. An antithetic
    pair ``v, -v`` makes the term ``(n / (2 delta)) (C(theta + delta v) - C(theta -
    delta v)) v``, a central difference: the base cost cancels (its noise with it) and the
    curvature's bias of the forward difference, of order delta, goes to order delta^2.
    With one direction this is :func:`zeroth_order_gradient` to the last bit.
    """
    directions = np.atleast_2d(np.asarray(directions, dtype=float))
    costs = np.atleast_1d(np.asarray(costs_perturbed, dtype=float))
    if costs.shape != (directions.shape[0],):
        raise ValueError(f'{costs.size} perturbed costs for {directions.shape[0]} directions')
    total = zeroth_order_gradient(costs[0], cost_base, directions[0], delta)
    for cost, direction in zip(costs[1:], directions[1:]):
        total = total + zeroth_order_gradient(cost, cost_base, direction, delta)
    return total / len(costs)


def hybrid_direction(g_zo: np.ndarray | None, j_c: np.ndarray | None,
                     eta: float) -> np.ndarray:
    """``(1 - eta) G_zo + eta J_C``; a term whose weight is 0 may be None (not computed)."""
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f'eta must lie in [0, 1], got {eta}')
    out = 0.0
    if eta < 1.0:
        out = out + (1.0 - eta) * g_zo
    if eta > 0.0:
        out = out + eta * j_c
    return np.asarray(out, dtype=float)
