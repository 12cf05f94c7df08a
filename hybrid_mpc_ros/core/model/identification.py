"""System identification of the affine nominal model from closed-loop plant data.

SPEC section 2: 100 closed-loop trajectories near the target under a stabilising
controller (the hover LQR of :mod:`lqr`) with seeded Gaussian input excitation, then
``[A B c] = argmin sum |x+ - A x - B u - c|^2`` by linear least squares. Held-out
trajectories (a separate seed stream) give one-step and multi-step prediction errors.
"""

from __future__ import annotations

from dataclasses import dataclass
import sys

import numpy as np

from hybrid_mpc_ros.core.model.lqr import LQRController
from hybrid_mpc_ros.core.model.nominal_model import AffineModel
from hybrid_mpc_ros.core.model.quadcopter import NU, NX, QuadParams, Quadcopter

GROUPS = {'position': slice(0, 3), 'velocity': slice(3, 6), 'attitude': slice(6, 9),
          'rates': slice(9, 12)}


@dataclass(frozen=True)
class IdentificationSettings:
    """How the identification data are collected (all recorded in the model header)."""

    trajectories: int = 100
    held_out: int = 20
    steps: int = 60                       # per trajectory (6 s at 0.1 s)
    seed: int = 0
    input_noise_std: float = 5.0          # rad/s, Gaussian excitation on every rotor
    position_spread: float = 1.0          # m, uniform start offsets around the target
    velocity_spread: float = 0.5          # m/s
    attitude_spread: float = 0.1          # rad
    rate_spread: float = 0.1              # rad/s
    prediction_horizon: int = 10          # steps, for the multi-step error
    target: tuple = (-6.0, -3.5, 0.0)


def collect(quad: Quadcopter, settings: IdentificationSettings, rng: np.random.Generator,
            count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Run ``count`` excited closed-loop trajectories: list of (X (T+1, 12), U (T, 4))."""
    controller = LQRController(quad, target_position=settings.target)
    spread = np.concatenate([np.full(3, settings.position_spread),
                             np.full(3, settings.velocity_spread),
                             np.full(3, settings.attitude_spread),
                             np.full(3, settings.rate_spread)])
    out = []
    for _ in range(count):
        x = quad.hover_state(settings.target) + rng.uniform(-1.0, 1.0, NX) * spread
        xs, us = [x], []
        for _ in range(settings.steps):
            u = controller.command(x) + settings.input_noise_std * rng.normal(size=NU)
            u = quad.clip_input(u)
            x = quad.step(x, u)
            xs.append(x)
            us.append(u)
        out.append((np.array(xs), np.array(us)))
    return out


def fit_affine(data: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
    """Least-squares ``(A (12x12), B (12x4), c (12,))`` from trajectories (see :func:`collect`)."""
    regressors = np.vstack([np.hstack([xs[:-1], us, np.ones((len(us), 1))]) for xs, us in data])
    targets = np.vstack([xs[1:] for xs, _ in data])
    coef, *_ = np.linalg.lstsq(regressors, targets, rcond=None)
    coef = coef.T                                     # (12, 17)
    return coef[:, :NX], coef[:, NX:NX + NU], coef[:, -1]


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


def identify(params: QuadParams | None = None, dt: float = 0.1, substeps: int = 4,
             settings: IdentificationSettings | None = None, progress=None) -> AffineModel:
    """Collect data on the plant ``params`` and fit the affine nominal model, with a header."""
    settings = settings or IdentificationSettings()
    quad = Quadcopter(params or QuadParams(), dt=dt, substeps=substeps)
    train_rng, test_rng = (np.random.default_rng(s) for s in
                           np.random.SeedSequence(settings.seed).spawn(2))
    if progress:
        progress(f'collecting {settings.trajectories} training trajectories')
    train = collect(quad, settings, train_rng, settings.trajectories)
    if progress:
        progress(f'collecting {settings.held_out} held-out trajectories')
    test = collect(quad, settings, test_rng, settings.held_out)
    a_mat, b_mat, c_vec = fit_affine(train)
    model = AffineModel(a_mat, b_mat, c_vec, dt)
    errors = prediction_errors(model, test, settings.prediction_horizon)
    model.header = {
        'source': 'least squares on closed-loop data of the simulated plant',
        'command': 'hybrid-mpc identify',
        'controller': 'hover LQR (Qc, Rc) with Gaussian input excitation',
        'settings': {k: (list(v) if isinstance(v, tuple) else v)
                     for k, v in settings.__dict__.items()},
        'samples': int(sum(len(us) for _, us in train)),
        'plant': quad.params.as_dict(),
        'substeps': substeps,
        'held_out_errors': errors,
    }
    return model


def main(out: str, seed: int = 0, trajectories: int = 100,
         plant_file: str | None = None) -> int:
    """``hybrid-mpc identify``: fit, print the errors, write ``out``; JSON last line."""
    import json
    params = QuadParams.from_yaml(plant_file) if plant_file else QuadParams()
    settings = IdentificationSettings(trajectories=trajectories, seed=seed)
    model = identify(params, settings=settings,
                     progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    model.save(out)
    errors = model.header['held_out_errors']
    for key, value in errors.items():
        print(f'{key:32s} {value:.3e}')
    print(f'wrote {out}')
    print(json.dumps(dict(errors, out=out, samples=model.header['samples'])))
    return 0
