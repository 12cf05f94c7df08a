"""System identification of the nominal model from closed-loop plant data.

As in the paper's experiment: 100 closed-loop trajectories near the target under a stabilising
controller (the hover LQR of :mod:`lqr`) with seeded Gaussian input excitation, then
``[A B c] = argmin sum |x+ - A x - B u - c|^2`` by linear least squares, or ``[A B]``
without ``c`` when the settings say ``affine: false`` (the published paper's model
``g(x, u) = A x + B u``; the file then holds ``c = 0``). Held-out trajectories (a separate
seed stream) give one-step and multi-step prediction errors. The settings, the plant, the
target and the controller's weights come from a scenario
(:meth:`hybrid_mpc_ros.core.scenario.Scenario.identify`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from hybrid_mpc_ros.core.model.lqr import LQRController
from hybrid_mpc_ros.core.model.nominal_model import AffineModel
from hybrid_mpc_ros.core.model.quadcopter import NU, NX, Quadcopter

GROUPS = {'position': slice(0, 3), 'velocity': slice(3, 6), 'attitude': slice(6, 9),
          'rates': slice(9, 12)}


@dataclass(frozen=True)
class IdentificationSettings:
    """How the identification data are collected and fitted (recorded in the model header).

    ``trajectories`` training and ``held_out`` test trajectories of ``steps`` steps each;
    ``seed``; ``input_noise_std`` [rad/s] Gaussian excitation on every rotor; uniform start
    offsets around the target of ``position_spread`` [m], ``velocity_spread`` [m/s],
    ``attitude_spread`` [rad], ``rate_spread`` [rad/s]; ``prediction_horizon`` steps for
    the multi-step error; ``affine``: fit ``c`` too (else ``c = 0``).
    """

    trajectories: int
    held_out: int
    steps: int
    seed: int
    input_noise_std: float
    position_spread: float
    velocity_spread: float
    attitude_spread: float
    rate_spread: float
    prediction_horizon: int
    affine: bool


def collect(quad: Quadcopter, settings: IdentificationSettings, controller: LQRController,
            rng: np.random.Generator, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Run ``count`` excited closed-loop trajectories: list of (X (T+1, 12), U (T, 4)).

    Each starts at hover at the controller's target plus a uniform offset.
    """
    spread = np.concatenate([np.full(3, settings.position_spread),
                             np.full(3, settings.velocity_spread),
                             np.full(3, settings.attitude_spread),
                             np.full(3, settings.rate_spread)])
    out = []
    for _ in range(count):
        x = quad.hover_state(controller.target_position) + rng.uniform(-1.0, 1.0, NX) * spread
        xs, us = [x], []
        for _ in range(settings.steps):
            u = controller.command(x) + settings.input_noise_std * rng.normal(size=NU)
            u = quad.clip_input(u)
            x = quad.step(x, u)
            xs.append(x)
            us.append(u)
        out.append((np.array(xs), np.array(us)))
    return out


def fit_model(data: list[tuple[np.ndarray, np.ndarray]],
              affine: bool) -> tuple[np.ndarray, ...]:
    """Least-squares ``(A (12x12), B (12x4), c (12,))`` from trajectories (see :func:`collect`).

    With ``affine`` False the regression has no constant column and ``c`` is zero.
    """
    if affine:
        regressors = np.vstack([np.hstack([xs[:-1], us, np.ones((len(us), 1))])
                                for xs, us in data])
    else:
        regressors = np.vstack([np.hstack([xs[:-1], us]) for xs, us in data])
    targets = np.vstack([xs[1:] for xs, _ in data])
    coef, *_ = np.linalg.lstsq(regressors, targets, rcond=None)
    coef = coef.T                                     # (12, 17) or (12, 16)
    c_vec = coef[:, -1] if affine else np.zeros(NX)
    return coef[:, :NX], coef[:, NX:NX + NU], c_vec


def prediction_errors(model: AffineModel, data, horizon: int) -> dict:
    """RMS one-step and ``horizon``-step open-loop prediction errors per state group."""
    one, multi = [], []
    for xs, us in data:
        one.append(xs[1:] - (xs[:-1] @ model.A.T + us @ model.B.T + model.c))
        for start in range(0, len(us) - horizon + 1, horizon):
            x = xs[start]
            for k in range(horizon):
                x = model.step(x, us[start + k])
            multi.append(xs[start + horizon] - x)
    one, multi = np.vstack(one), np.vstack(multi)
    result = {}
    for name, sl in GROUPS.items():
        result[f'one_step_rmse_{name}'] = float(np.sqrt(np.mean(one[:, sl] ** 2)))
        result[f'{horizon}_step_rmse_{name}'] = float(np.sqrt(np.mean(multi[:, sl] ** 2)))
    return result


def identify(quad: Quadcopter, settings: IdentificationSettings, target,
             state_weight: np.ndarray, input_weight: np.ndarray,
             progress=None) -> AffineModel:
    """Collect data on the plant ``quad`` and fit the nominal model, with a header.

    The data are flown by the hover LQR with weights ``state_weight`` (12,) and
    ``input_weight`` (4,) (diagonals) towards ``target`` (3,) [m]; the model has the
    plant's period ``quad.dt``. ``progress(message)`` is called before each data batch.
    """
    controller = LQRController(quad, Q=state_weight, R=input_weight,
                               target_position=target)
    train_rng, test_rng = (np.random.default_rng(s) for s in
                           np.random.SeedSequence(settings.seed).spawn(2))
    if progress:
        progress(f'collecting {settings.trajectories} training trajectories')
    train = collect(quad, settings, controller, train_rng, settings.trajectories)
    if progress:
        progress(f'collecting {settings.held_out} held-out trajectories')
    test = collect(quad, settings, controller, test_rng, settings.held_out)
    a_mat, b_mat, c_vec = fit_model(train, settings.affine)
    model = AffineModel(a_mat, b_mat, c_vec, quad.dt)
    errors = prediction_errors(model, test, settings.prediction_horizon)
    model.header = {
        'source': 'least squares on closed-loop data of the simulated plant',
        'command': 'hybrid-mpc identify',
        'controller': 'hover LQR (Qc, Rc) with Gaussian input excitation',
        'settings': dict(asdict(settings),
                         target=[float(v) for v in controller.target_position]),
        'samples': int(sum(len(us) for _, us in train)),
        'plant': quad.params.as_dict(),
        'substeps': quad.substeps,
        'integrator': quad.integrator,
        'held_out_errors': errors,
    }
    return model
