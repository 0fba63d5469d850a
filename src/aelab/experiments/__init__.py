"""The logic behind the report: figures (:mod:`aelab.experiments.figures`); ``scripts/`` are thin drivers."""
