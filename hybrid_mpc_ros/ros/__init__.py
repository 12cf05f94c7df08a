"""The thin ROS 2 layer: message codecs and one module per node (the only code using rclpy)."""
