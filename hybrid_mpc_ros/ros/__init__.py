"""The thin ROS 2 layer: message codecs, the shared node runtime and one module per node.

The only code using rclpy. ``node_runtime`` holds what every node shares (``run_node``,
the ``main()`` loop with its error handling, and the parameter-descriptor helper); nodes
import nothing from ``hybrid_mpc_ros.tools``.
"""
