"""The ROS-free core: model, MPC and its sensitivities, learning, scenarios.

Nothing under ``core`` imports rclpy or any ROS message package (a test checks it in a
fresh interpreter), so everything here runs and is tested without a ROS graph.
"""
