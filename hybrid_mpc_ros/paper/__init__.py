"""The published paper's experiments, apart from the product: ``hybrid-mpc paper ...``.

The study of the choices the paper leaves unstated, its Appendix C ablations, its
computation times and the robustness family of mismatched vehicles. They run on the
product's tools (:mod:`hybrid_mpc_ros.tools.reproduce` and the core); the product never
imports them (the ``hybrid-mpc`` command's table names them, imported only when run).
Their results live in the checkout's top-level ``paper/`` folder.
"""
