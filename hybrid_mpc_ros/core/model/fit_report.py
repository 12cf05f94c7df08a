"""Fit the nominal model from flight data, with the report a user needs to trust it.

:func:`fit_with_report` takes gap-free stretches of flight ``(X (T+1, 12), U (T, 4))``
(from a recording, :func:`hybrid_mpc_ros.core.model.flight_log.segments`, or from any
other source), fits ``x+ = A x + B u (+ c)`` by least squares
(:func:`~hybrid_mpc_ros.core.model.identification.fit_model`) and returns the model with a
:class:`FitReport`. Unusable data are refused with :class:`IdentificationError` (a
:class:`~hybrid_mpc_ros.core.config.ConfigError`: the command line prints the reason and
exits with status 2):

* **non-finite** states or commands;
* **too short**: fewer training samples than ``5 (12 + 4 + 1)``, or fewer than 2 blocks
  (one to fit, one to hold out);
* **no excitation**: a rotor's command never changes, or every command is an affine
  function of the state (pure feedback: ``[x, u]`` is then rank deficient and least
  squares cannot tell ``A`` from ``B K``);
* **rank deficient**: the regressor ``[x, u, 1]`` (column-scaled) has a rank below its
  column count (a state that never changes, two that always move together).

Gaps are judged where they are found (:func:`hybrid_mpc_ros.core.model.flight_identification.
fit_from_recording`).

**Held-out errors.** The stretches are cut into blocks of ``block_steps`` steps; every
``holdout_every``-th block is held out whole (never random samples: neighbouring samples
of one flight are nearly equal, so a random split would test on the training data). The
report gives the RMS one-step and ``horizon``-step open-loop errors per state group on the
held-out blocks.

**Excitation seen.** The input's standard deviation per rotor [rad/s], the states' per
group, and the *excitation ratio* per rotor: ``std(r_i) / std(u_i)`` where ``r`` is the
residual of the least-squares fit ``u ~ K x + k`` over the data, i.e. the share of the
input that no affine state feedback explains (the excitation; 0 under pure feedback).

**Condition number** of the regressor with every column scaled to unit RMS (units would
otherwise dominate it): large values say that some directions of ``[x, u]`` were barely
visited, and the fitted entries along them are poorly determined.

**Hover input.** The input ``u_h`` (4,) with ``x_h = A x_h + B u_h + c`` at the hover state
``x_h`` (least squares over the 12 equations; its residual is reported), beside the
scenario's ``u_ref``: a model that hovers at another speed than the vehicle will not
hold the target without an offset.

**Closed-loop bias warnings.** Least squares is unbiased only when the regressors are
uncorrelated with the equation error. In closed loop the input depends on the state, so
two ways the data were flown bias the fit, and the report warns about both:

1. *Excitation small against the feedback part*: the smallest excitation ratio below
   ``min_excitation_ratio`` (default 0.2). The inputs are then nearly a function of the
   states, the regressor nearly collinear, and any model error or noise is split between
   ``A`` and ``B`` along the controller's direction: the fit leans towards reproducing the
   controller rather than the vehicle. Remedy: fly with a larger excitation amplitude.
2. *Inputs correlated with the prediction error*: on the held-out blocks (in the training
   data least squares makes them uncorrelated by construction), the largest absolute
   correlation between a rotor's command ``u_k`` and a state's one-step error ``e_k =
   x_{k+1} - A x_k - B u_k - c`` above ``max_input_error_correlation`` (default 0.3), and
   above ``4 / sqrt(n)`` for ``n`` held-out samples (what white noise reaches by chance
   over the 48 pairs is about ``3 / sqrt(n)``). An
   unbiased model leaves an error the input does not predict; a correlation says the
   fit attributed to the states what the inputs did (or the reverse), which happens when
   noise or unmodelled dynamics enter the input through the feedback. Remedy: more
   excitation, a smaller feedback gain while identifying, or a model with more
   structure.

The thresholds are rules of thumb, reported with the measured values so a user can judge.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import math

import numpy as np

from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.model.identification import fit_model, GROUPS, prediction_errors
from hybrid_mpc_ros.core.model.nominal_model import AffineModel
from hybrid_mpc_ros.core.model.quadcopter import NU, NX

MIN_SAMPLES = 5 * (NX + NU + 1)
NO_EXCITATION_RATIO = 1e-6


class IdentificationError(ConfigError):
    """The data cannot give a model; the message says why and what to do."""


@dataclass(frozen=True)
class FitSettings:
    """How :func:`fit_with_report` fits and judges (module docstring).

    ``affine``: fit ``c`` too (else ``c = 0``); ``horizon``: steps of the multi-step
    error; ``block_steps``: steps per block of the held-out split (>= ``horizon``);
    ``holdout_every``: every such block is held out (>= 2); ``max_gap_fraction``: the
    largest share of a recording's steps lost to gaps; ``min_excitation_ratio`` and
    ``max_input_error_correlation``: the warnings' thresholds.
    """

    affine: bool = True
    horizon: int = 10
    block_steps: int = 50
    holdout_every: int = 5
    max_gap_fraction: float = 0.1
    min_excitation_ratio: float = 0.2
    max_input_error_correlation: float = 0.3

    def __post_init__(self):
        if self.horizon < 1 or self.block_steps < self.horizon:
            raise ConfigError(f'need 1 <= horizon <= block_steps, got horizon '
                              f'{self.horizon} and block_steps {self.block_steps}')
        if self.holdout_every < 2:
            raise ConfigError(f'holdout_every must be >= 2, got {self.holdout_every}')
        if not 0.0 <= self.max_gap_fraction < 1.0:
            raise ConfigError(f'max_gap_fraction must lie in [0, 1), got '
                              f'{self.max_gap_fraction}')


@dataclass
class FitReport:
    """What the data were and how well the model predicts them (module docstring).

    Sample counts; ``errors`` the held-out RMS errors (``one_step_rmse_<group>``,
    ``<horizon>_step_rmse_<group>``); ``input_std_rad_s`` (4), ``excitation_ratio`` (4),
    ``state_std`` (group -> 3 values); ``condition_number``; ``hover_input_rad_s`` (4)
    with ``hover_residual`` and ``u_ref`` (4); ``input_error_correlation``; ``warnings``;
    ``alignment``: how a recording was cut (empty for other data).
    """

    training_samples: int
    held_out_samples: int
    training_blocks: int
    held_out_blocks: int
    errors: dict
    input_std_rad_s: list
    excitation_ratio: list
    state_std: dict
    condition_number: float
    hover_input_rad_s: list
    hover_residual: float
    u_ref: list
    input_error_correlation: float
    warnings: list = field(default_factory=list)
    alignment: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """Plain types (for the model header and JSON)."""
        return asdict(self)

    def lines(self) -> list[str]:
        """Return the report as text, one string per line (as identify --from prints it)."""
        out = [f'samples: {self.training_samples} to fit ({self.training_blocks} blocks), '
               f'{self.held_out_samples} held out ({self.held_out_blocks} blocks)']
        if self.alignment:
            a = self.alignment
            out.append(f"recording: {a['used_steps']} of {a['grid_steps']} steps used, "
                       f"{a['segments']} stretches; gaps: {a['missing_odometry']} missing "
                       f"odometry, {a['missing_commands']} missing commands; dropped: "
                       f"{a['duplicate_odometry']} repeated, {a['off_grid_odometry']} "
                       f"off-grid odometry; {a['reordered_commands']} commands reordered")
        out += [f'held-out {key:28s} {value:.3e}' for key, value in self.errors.items()]
        out.append('input std per rotor [rad/s]: ' + _numbers(self.input_std_rad_s, '.2f'))
        out.append('excitation ratio per rotor:  ' + _numbers(self.excitation_ratio, '.3f'))
        out += [f'state std {name:9s} ' + _numbers(values, '.3e')
                for name, values in self.state_std.items()]
        out.append(f'condition number (scaled regressor): {self.condition_number:.3e}')
        out.append('hover input implied [rad/s]: ' + _numbers(self.hover_input_rad_s, '.2f')
                   + f' (residual {self.hover_residual:.2e}); u_ref: '
                   + _numbers(self.u_ref, '.2f'))
        out.append(f'largest |corr(input, held-out error)|: {self.input_error_correlation:.3f}')
        out += [f'WARNING: {warning}' for warning in self.warnings]
        return out


def _numbers(values, spec: str) -> str:
    return ' '.join(format(float(value), spec) for value in values)


def split_blocks(data: list[tuple[np.ndarray, np.ndarray]], block_steps: int,
                 holdout_every: int) -> tuple[list, list]:
    """Cut stretches ``(X (T+1, 12), U (T, 4))`` into blocks; return (training, held out).

    Blocks hold ``block_steps`` steps (a stretch's remainder shorter than that joins its
    last block; a stretch shorter than one block is one block); blocks are numbered across
    stretches and every ``holdout_every``-th (numbers ``holdout_every - 1``,
    ``2 holdout_every - 1``, ...) is held out.
    """
    blocks = []
    for xs, us in data:
        count = max(1, len(us) // block_steps)
        for i in range(count):
            start = i * block_steps
            stop = len(us) if i == count - 1 else start + block_steps
            blocks.append((xs[start:stop + 1], us[start:stop]))
    held = [b for i, b in enumerate(blocks) if i % holdout_every == holdout_every - 1]
    train = [b for i, b in enumerate(blocks) if i % holdout_every != holdout_every - 1]
    return train, held


def excitation_ratio(states: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """Per rotor, the share of the input no affine state feedback explains, shape (4,).

    ``states`` (n, 12), ``inputs`` (n, 4): ``std(r_i) / std(u_i)`` with ``r`` the residual
    of the least-squares fit ``u ~ K x + k`` (0 for a rotor whose command never changes).
    """
    regressor = np.hstack([states, np.ones((len(states), 1))])
    gain, *_ = np.linalg.lstsq(regressor, inputs, rcond=None)
    residual = inputs - regressor @ gain
    spread = inputs.std(axis=0)
    return np.where(spread > 0.0, residual.std(axis=0) / np.where(spread > 0, spread, 1.0), 0.0)


def hover_input(model: AffineModel, x_hover: np.ndarray) -> tuple[np.ndarray, float]:
    """Return the input u (4,) with ``x_h = A x_h + B u + c`` (least squares), residual norm."""
    target = x_hover - model.A @ x_hover - model.c
    u, *_ = np.linalg.lstsq(model.B, target, rcond=None)
    return u, float(np.linalg.norm(model.B @ u - target))


def _largest_correlation(inputs: np.ndarray, errors: np.ndarray) -> float:
    """Return the largest |correlation| of an input and an error column (0 if none vary)."""
    u = inputs - inputs.mean(axis=0)
    e = errors - errors.mean(axis=0)
    su, se = np.sqrt((u ** 2).sum(axis=0)), np.sqrt((e ** 2).sum(axis=0))
    scale = np.max(np.abs(errors)) if errors.size else 0.0
    # errors at rounding level (a noise-free model that fits) carry no information
    keep_u, keep_e = su > 0.0, se > 1e-12 * max(scale, 1e-300) * math.sqrt(len(e))
    if not keep_u.any() or not keep_e.any():
        return 0.0
    corr = (u[:, keep_u].T @ e[:, keep_e]) / np.outer(su[keep_u], se[keep_e])
    return float(np.max(np.abs(corr)))


def fit_with_report(data: list[tuple[np.ndarray, np.ndarray]], dt: float,
                    x_hover: np.ndarray, u_ref: np.ndarray,
                    settings: FitSettings = FitSettings()) -> tuple[AffineModel, FitReport]:
    """Fit ``x+ = A x + B u (+ c)`` from stretches ``(X (T+1, 12), U (T, 4))``; judge it.

    ``dt`` [s]: the data's period (the model's); ``x_hover`` (12,): the hover state of the
    hover-input check; ``u_ref`` (4,) [rad/s]: the scenario's input reference beside it.
    Returns the model (header empty: the caller says where the data came from) and the
    :class:`FitReport`. Raises :class:`IdentificationError` for unusable data.
    """
    data = [(np.asarray(xs, dtype=float), np.asarray(us, dtype=float)) for xs, us in data]
    bad = sum(int(np.count_nonzero(~np.isfinite(xs).all(axis=1))) for xs, _ in data)
    bad_inputs = sum(int(np.count_nonzero(~np.isfinite(us).all(axis=1))) for _, us in data)
    if bad or bad_inputs:
        raise IdentificationError(
            f'the data hold {bad} non-finite states and {bad_inputs} non-finite commands '
            '(NaN/Inf, or an odometry orientation that is no rotation): fix the recording '
            'or cut the bad stretch out')
    total = sum(len(us) for _, us in data)
    train, held = split_blocks(data, settings.block_steps, settings.holdout_every)
    train_samples = sum(len(us) for _, us in train)
    if train_samples < MIN_SAMPLES or not held:
        raise IdentificationError(
            f'too short: {total} steps give {train_samples} training samples and '
            f'{len(held)} held-out blocks; need at least {MIN_SAMPLES} training samples '
            f'and {settings.holdout_every} blocks of {settings.block_steps} steps '
            f'({settings.holdout_every * settings.block_steps * dt:g} s of flight without '
            'a gap)')
    states = np.vstack([xs[:-1] for xs, _ in train])
    inputs = np.vstack([us for _, us in train])
    input_std = inputs.std(axis=0)
    if np.any(input_std == 0.0):
        rotors = np.flatnonzero(input_std == 0.0).tolist()
        raise IdentificationError(
            f'no excitation: the command of rotor(s) {rotors} never changes; fly with the '
            "controller's excitation on (excitation.amplitude_rad_s > 0)")
    ratio = excitation_ratio(states, inputs)
    if np.max(ratio) < NO_EXCITATION_RATIO:
        raise IdentificationError(
            'no excitation: every command is an affine function of the state (pure '
            'feedback), so the effect of the input cannot be told from that of the state; '
            "fly with the controller's excitation on (excitation.amplitude_rad_s > 0)")
    columns = [states, inputs] + ([np.ones((len(states), 1))] if settings.affine else [])
    regressor = np.hstack(columns)
    rms = np.sqrt(np.mean(regressor ** 2, axis=0))
    scaled = regressor / np.where(rms > 0.0, rms, 1.0)      # a zero column stays zero
    rank = int(np.linalg.matrix_rank(scaled))
    if rank < scaled.shape[1]:
        still = [i for i in range(NX) if np.all(states[:, i] == states[0, i])]
        hint = (f'; state(s) {still} never change' if still else
                '; some states or inputs always move together')
        raise IdentificationError(
            f'rank deficient: the regressor [x, u{", 1" if settings.affine else ""}] has rank '
            f'{rank} < {scaled.shape[1]}{hint}: fly a richer manoeuvre or more excitation')
    condition = float(np.linalg.cond(scaled))
    a_mat, b_mat, c_vec = fit_model(train, settings.affine)
    model = AffineModel(a_mat, b_mat, c_vec, dt)
    errors = prediction_errors(model, held, settings.horizon)
    held_states = np.vstack([xs[:-1] for xs, _ in held])
    held_inputs = np.vstack([us for _, us in held])
    held_next = np.vstack([xs[1:] for xs, _ in held])
    residual = held_next - held_states @ model.A.T - held_inputs @ model.B.T - model.c
    correlation = _largest_correlation(held_inputs, residual)
    x_hover = np.asarray(x_hover, dtype=float).reshape(NX)
    u_hover, hover_residual = hover_input(model, x_hover)
    warnings = []
    if np.min(ratio) < settings.min_excitation_ratio:
        warnings.append(
            f'excitation is small against the feedback part of the input (ratio '
            f'{np.min(ratio):.3f} < {settings.min_excitation_ratio:g} on rotor '
            f'{int(np.argmin(ratio))}): a closed-loop fit then leans towards the '
            "controller's relation and may be biased; fly with a larger "
            'excitation.amplitude_rad_s')
    limit = max(settings.max_input_error_correlation, 4.0 / math.sqrt(len(held_inputs)))
    if correlation > limit:
        warnings.append(
            f'inputs correlate with the held-out prediction error (|corr| '
            f'{correlation:.3f} > {limit:.3f}): noise or '
            'unmodelled dynamics entered the inputs through the feedback, which biases '
            'the fit; fly with more excitation or a softer controller while identifying')
    state_all = np.vstack([xs for xs, _ in data])
    report = FitReport(
        training_samples=train_samples, held_out_samples=int(len(held_inputs)),
        training_blocks=len(train), held_out_blocks=len(held), errors=errors,
        input_std_rad_s=[float(v) for v in input_std],
        excitation_ratio=[float(v) for v in ratio],
        state_std={name: [float(v) for v in state_all[:, part].std(axis=0)]
                   for name, part in GROUPS.items()},
        condition_number=condition, hover_input_rad_s=[float(v) for v in u_hover],
        hover_residual=hover_residual,
        u_ref=[float(v) for v in np.asarray(u_ref, dtype=float).reshape(NU)],
        input_error_correlation=correlation, warnings=warnings)
    return model, report
