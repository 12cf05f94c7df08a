"""``hybrid-mpc identify``: identify a scenario's nominal model and write the file it names.

Two routes: the simulated one (``--scenario`` alone, by the scenario's
``system_identification.method``: ``lqr``, excited closed-loop trajectories of the
scenario's plant under the hover LQR, :mod:`hybrid_mpc_ros.core.model.identification`; or
``flights``, the scenario's MPC flies its plant of any kind with input excitation, the
flight is fitted, and again with the fitted model, starting from the rough
specifications' model,
:func:`~hybrid_mpc_ros.core.model.flight_identification.identify_by_flying`) and a
recorded flight (``--from FLIGHT``: an MCAP recording of odometry and rotor
commands, :mod:`hybrid_mpc_ros.core.model.flight_identification`; the scenario gives the
period, the hover state ``x_ref``, ``u_ref`` and ``affine``). Unusable recordings are
refused with the reason (exit status 2).

Several scenarios may name one model file (the mismatch example plans with the arXiv
scenario's model on purpose), so writing a scenario's model must not silently replace one
that was identified for another. Without ``--out`` the command refuses when the existing
file's header shows a different scenario *and* different identification inputs (plant,
sampling time, integrator, settings, target); re-identifying the same scenario, or an
identical setup, replaces the file as before. Headers written before scenarios existed
carry no ``scenario``, ``integrator`` or ``affine`` entry: they were RK4 and affine, the
only choices then.
"""

from __future__ import annotations

from dataclasses import asdict, replace
import json
import os
import sys

from hybrid_mpc_ros.core.config import ConfigError
from hybrid_mpc_ros.core.model.fit_report import FitReport, FitSettings
from hybrid_mpc_ros.core.model.flight_identification import fit_from_recording, FlightSettings
from hybrid_mpc_ros.core.model.flight_log import DEFAULT_COMMAND_TOPIC, DEFAULT_ODOMETRY_TOPIC
from hybrid_mpc_ros.core.model.nominal_model import AffineModel
from hybrid_mpc_ros.core.scenario import load_scenario, resolve_scenario_path, Scenario
from hybrid_mpc_ros.tools.cli import add_scenario_argument, positive_int


def identification_inputs(scenario: Scenario, **overrides) -> dict:
    """Return what the model header of ``scenario.identify(**overrides)`` records about its data."""
    settings = replace(scenario.identification, **overrides)
    if isinstance(settings, FlightSettings):
        return {'plant': scenario.simulator.describe(), 'dt': scenario.period_s,
                'settings': {name: getattr(settings, name) for name in (
                    'method', 'rounds', 'duration_s', 'amplitude_rad_s', 'kind', 'seed',
                    'prediction_horizon', 'affine')}}
    return {'plant': scenario.plant_params.as_dict(), 'dt': scenario.period_s,
            'substeps': scenario.substeps, 'integrator': scenario.integrator,
            'settings': dict(asdict(settings),
                             target=[float(v) for v in scenario.x_ref[0:3]])}


def _recorded_inputs(header: dict) -> dict:
    """Return the same entries read from a model header (legacy headers: RK4, affine)."""
    settings = dict(header.get('settings') or {})
    settings.setdefault('affine', True)
    return {'plant': header.get('plant'), 'dt': header.get('dt'),
            'substeps': header.get('substeps'),
            'integrator': header.get('integrator', 'rk4'), 'settings': settings}


def overwrite_problem(path: str, scenario: Scenario, **overrides) -> str:
    """Why writing ``scenario``'s model to the existing ``path`` would clobber another's.

    Returns '' when the file was identified for this scenario (by name) or from the same
    inputs, so replacing it loses nothing that the scenario does not regenerate.
    """
    try:
        header = AffineModel.load(path).header
    except ConfigError as exc:
        return f'{path} exists but is not a readable model file ({exc})'
    if header.get('scenario') == scenario.name:
        return ''
    expected = identification_inputs(scenario, **overrides)
    recorded = _recorded_inputs(header)
    differing = [key for key in expected if recorded.get(key) != expected[key]]
    if not differing:
        return ''
    owner = (f"scenario {header['scenario']!r}" if header.get('scenario')
             else 'another identification')
    return (f'{path} holds the nominal model of {owner}: its {" and ".join(differing)} '
            f'differ from those of scenario {scenario.name!r}; pass --out to write this '
            "model elsewhere (and name that file in the scenario's nominal_model_file)")


def from_recording(setup: Scenario, recording: str, odometry_topic: str,
                   command_topic: str) -> AffineModel:
    """Fit ``setup``'s model from the recording; the model's header holds the report."""
    settings = FitSettings(affine=setup.identification.affine,
                           horizon=setup.identification.prediction_horizon)
    model, report = fit_from_recording(recording, setup.period_s, setup.x_ref, setup.u_ref,
                                       settings, odometry_topic, command_topic)
    model.header = dict({'scenario': setup.name}, **model.header)
    for line in report.lines():
        print(line)
    return model


def main(scenario: str | None = None, out: str | None = None, seed: int | None = None,
         trajectories: int | None = None, recording: str | None = None,
         odometry_topic: str = DEFAULT_ODOMETRY_TOPIC,
         command_topic: str = DEFAULT_COMMAND_TOPIC, recordings: str | None = None,
         specs_only: bool = False) -> int:
    """Identify, print the held-out errors, write the model; JSON summary as the last line.

    ``scenario`` is a file or a shipped scenario's name (default: the default scenario);
    ``seed`` and ``trajectories`` override its identification settings; ``out`` replaces
    the file the scenario names; ``recordings`` (a directory) keeps the flights of the
    ``flights`` method as MCAP; ``specs_only`` writes the rough specifications' model (the
    first flight's) without flying. With ``recording`` (an MCAP recording's directory) the
    model is fitted from it instead (topics ``odometry_topic``, ``command_topic``) and the
    report printed. Raises ConfigError (the CLI prints it) when the default output holds
    another scenario's model or the recording is unusable.
    """
    path = resolve_scenario_path(scenario)
    setup = load_scenario(path, load_model=False)
    overrides = {key: value for key, value in (('seed', seed), ('trajectories', trajectories))
                 if value is not None}
    target = out or setup.nominal_model_output()
    if out is None and os.path.exists(target):
        problem = overwrite_problem(target, setup, **overrides)
        if problem:
            raise ConfigError(problem)
    if recording is not None:
        if overrides:
            raise ConfigError('--seed and --trajectories belong to the simulated route, not '
                              'to --from')
        model = from_recording(setup, recording, odometry_topic, command_topic)
        model.save(target)
        print(f'wrote {target}')
        report = model.header['report']
        print(json.dumps(dict(model.header['held_out_errors'], out=target, scenario=path,
                              recording=model.header['recording'],
                              samples=model.header['samples'],
                              condition_number=report['condition_number'],
                              hover_input_rad_s=report['hover_input_rad_s'],
                              warnings=report['warnings'])))
        return 0
    flights = isinstance(setup.identification, FlightSettings)
    if specs_only:
        if not flights or setup.identification.specs is None:
            raise ConfigError('--specs-only writes the model of system_identification.specs; '
                              f'scenario {setup.name!r} gives no rough specifications')
        model = setup.first_model()
        model.header = dict({'scenario': setup.name, 'command': 'hybrid-mpc identify '
                             '--specs-only'}, **model.header)
        model.save(target)
        print(f'wrote {target} (rough specifications linearised at hover, not identified)')
        print(json.dumps({'out': target, 'scenario': path, 'source': model.header['source']}))
        return 0
    if recordings is not None and not flights:
        raise ConfigError('--recordings keeps the flights of system_identification method '
                          'flights; this scenario\'s method is lqr')
    extra = {'recordings': recordings} if flights else {}
    model = setup.identify(progress=lambda msg: print(msg, file=sys.stderr, flush=True),
                           **extra, **overrides)
    model.save(target)
    errors = model.header['held_out_errors']
    if flights:
        print("the last flight's fit:")
        for line in FitReport(**model.header['report']).lines():
            print(line)
        for flight in model.header['validation']:
            print(f"validation flight with the {flight['model']} model: cost "
                  f"{flight['cost']:.2f}, {flight['final_position_error_m']:.4f} m from x_ref "
                  'after the episode, '
                  f"{flight['solver_failures']} solver failures")
        print(f"written: the {model.header['chosen']} model")
    else:
        for key, value in errors.items():
            print(f'{key:32s} {value:.3e}')
    print(f'wrote {target}')
    summary = dict(errors, out=target, scenario=path, samples=model.header['samples'])
    if flights:
        report = model.header['report']
        summary.update(rounds=len(model.header['rounds']), chosen=model.header['chosen'],
                       validation=model.header['validation'],
                       condition_number=report['condition_number'],
                       hover_input_rad_s=report['hover_input_rad_s'],
                       warnings=report['warnings'])
    print(json.dumps(summary))
    return 0


def add_arguments(parser) -> None:
    """Add the options of ``hybrid-mpc identify`` to ``parser``."""
    parser.description = (
        'Collect seeded, excited closed-loop trajectories near the target on the '
        "scenario's simulated plant, fit x+ = A x + B u + c (or A x + B u when its "
        'system_identification says affine: false) by least squares, report held-out '
        'prediction errors and write the model the scenario names (NPZ with a YAML '
        'header). With --from, the model is fitted from a recorded flight instead (MCAP, '
        'nav_msgs/Odometry and the rotor commands; see docs/identification.md) and the '
        'fit report printed. A model file identified for another scenario is not '
        'overwritten unless --out names it.')
    add_scenario_argument(parser)
    parser.add_argument('--out', default=None,
                        help="output file (default: the scenario's nominal_model_file, in "
                             'config/ of the checkout when relative)')
    parser.add_argument('--seed', type=int, default=None,
                        help="random seed (default: the scenario's)")
    parser.add_argument('--trajectories', type=positive_int, default=None,
                        help="training trajectories (default: the scenario's)")
    parser.add_argument('--from', dest='recording', metavar='FLIGHT', default=None,
                        help='fit from this recorded flight (a rosbag2 MCAP directory, as '
                             '`hybrid-mpc record` or `ros2 bag record -s mcap` writes it) '
                             "instead of flying the scenario's plant")
    parser.add_argument('--odom-topic', default=DEFAULT_ODOMETRY_TOPIC,
                        help='odometry topic in the recording (nav_msgs/Odometry; default '
                             '%(default)s)')
    parser.add_argument('--command-topic', default=DEFAULT_COMMAND_TOPIC,
                        help='rotor command topic in the recording (std_msgs/'
                             'Float64MultiArray, 4 rotor speeds [rad/s]; default %(default)s)')
    parser.add_argument('--specs-only', action='store_true',
                        help='write the model of system_identification.specs (the rough '
                             "specifications' equations linearised at hover: what the first "
                             'identification flight flies with, e.g. on a real vehicle) '
                             'without flying')
    parser.add_argument('--recordings', metavar='DIR', default=None,
                        help='system_identification method flights: keep each flight in '
                             'DIR/round_<k> (MCAP, as --from reads it)')


def run(args) -> int:
    """Run ``hybrid-mpc identify`` with the parsed ``args``; the exit status."""
    return main(scenario=args.scenario, out=args.out, seed=args.seed,
                trajectories=args.trajectories, recording=args.recording,
                odometry_topic=args.odom_topic, command_topic=args.command_topic,
                recordings=args.recordings, specs_only=args.specs_only)
