"""The logic behind the report: figures (:mod:`aelab_tools.figures`); ``scripts/`` are thin drivers."""
