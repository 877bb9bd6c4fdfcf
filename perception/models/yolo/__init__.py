"""2D camera detection through ultralytics YOLO (optional extra ``perception[yolo]``, AGPL-3.0).

Modules: ``env`` (offline import), ``model`` (load a YAML or checkpoint), ``data`` (resolve and
check ``--data``), ``train``, ``evaluate``, ``predict``, ``predictor`` (``YoloPredictor``),
``compare``. Nothing here imports ultralytics at import time.
"""
