"""Pictures of frames and predictions: camera overlays, BEV rasters, the open3d viewer.

Import what you need from the submodules (``perception.viz.bev``, ``perception.viz.overlay``,
``perception.viz.colors``); open3d is only imported by ``perception.viz.open3d_view``.
"""
