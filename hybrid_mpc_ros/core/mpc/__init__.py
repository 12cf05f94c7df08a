"""The MPC: theta, the acados policy, KKT sensitivities, the reference QP, acados set-up."""
