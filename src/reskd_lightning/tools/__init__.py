"""The ``reskd`` tools: one module per tool, each a thin ``main(argv)`` over library functions.

``reskd_lightning.cli`` dispatches ``reskd TOOL ...`` to ``tools.<module>.main``; notebooks and scripts call the
library functions underneath in process. Every tool that reads a config does it through :mod:`.config`.

* ``analyze``: the key-finding analysis (:mod:`reskd_lightning.analysis`);
* ``benchmark``: inference and training-step times of a config (:mod:`reskd_lightning.benchmark`);
* ``check_data``: every unreadable video of a config's lists (:mod:`reskd_lightning.data.check`);
* ``demo_data``: the demo videos (:func:`reskd_lightning.data.write_demo_dataset`);
* ``export``: the student alone, and a torch.export program (:mod:`reskd_lightning.student_export`);
* ``flops``: GMACs and parameters (:mod:`reskd_lightning.efficiency`);
* ``prepare``: videos into frame folders or MJPEG files for fast loading (:mod:`reskd_lightning.data.prepare`);
* ``predict``: the top classes of your own videos (:class:`reskd_lightning.predictions.VideoPredictor`);
* ``config``: :func:`~reskd_lightning.tools.config.load_config`, the one config loader.
"""
