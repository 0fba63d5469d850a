"""What autoencoders are for, measured against honest baselines.

``aelab-eval`` runs :func:`aelab.evaluation.suite.run_suite` after testing a checkpoint. Each part is a
small module usable on its own:

- :mod:`~aelab.evaluation.metrics`: per-image reconstruction metrics (MSE, BCE, PSNR, SSIM) and AUROC;
- :mod:`aelab.codecs` (a package of its own): code files, the classical codecs, PCA, the learned bitstream;
- :mod:`~aelab.evaluation.features`: linear-probe and k-NN accuracy of codes;
- :mod:`~aelab.evaluation.likelihood`: importance-sampled log-likelihood (IWAE bound);
- :mod:`~aelab.evaluation.suite`: runs whatever applies to a model and collects the figures.
"""
