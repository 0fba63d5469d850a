"""aelab's Optuna sweeper as a Hydra plugin (Hydra discovers sweepers in the ``hydra_plugins`` namespace)."""
