"""hybrid_mpc_ros: hybrid model-based / zeroth-order tuning of an acados MPC, with ROS 2 nodes.

The package is a ROS-free core (model, identification, MPC and its sensitivities, closed-loop
cost, gradient estimators, tuning loop) plus thin rclpy node shells.
"""

__version__ = '0.1.0'
