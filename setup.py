"""ament_python package definition for hybrid_mpc_ros."""

from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = 'hybrid_mpc_ros'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        (os.path.join('share', PACKAGE, 'launch'), glob('launch/*.launch.py')),
        (os.path.join('share', PACKAGE, 'config'), glob('config/*.yaml') + glob('config/*.npz')),
    ] + [
        # every scenario folder: config/scenarios and its families (robustness/, rotorpy/)
        (os.path.join('share', PACKAGE, folder), glob(os.path.join(folder, '*.yaml')))
        for folder in sorted({os.path.dirname(path) for path in
                              glob('config/scenarios/**/*.yaml', recursive=True)})
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='hybrid_mpc_ros developers',
    maintainer_email='dev@hybrid-mpc-ros.invalid',
    description='Hybrid model-based / zeroth-order tuning of an acados MPC, with ROS 2 nodes.',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'simulator_node = hybrid_mpc_ros.ros.simulator_node:main',
            'lqr_controller_node = hybrid_mpc_ros.ros.lqr_controller_node:main',
            'mpc_controller_node = hybrid_mpc_ros.ros.mpc_controller_node:main',
            'tuner_node = hybrid_mpc_ros.ros.tuner_node:main',
            'flight_recorder_node = hybrid_mpc_ros.ros.flight_recorder_node:main',
            'hybrid-mpc = hybrid_mpc_ros.tools.cli:main',
        ],
    },
)
