"""The logic behind the report: figures (:mod:`aelab.tools.figures`); ``scripts/`` are thin drivers."""
