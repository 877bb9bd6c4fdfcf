"""Pictures of frames and predictions, used by ``perception stream``, ``perception view`` and ``perception demo``.

Modules: ``colors`` (fixed class / track colours, height ramp), ``overlay`` (projected 3D boxes,
2D boxes, trails on camera images), ``bev`` (bird's-eye view raster), ``frame_view`` (camera and
BEV side by side with a HUD), ``trails`` (track histories), ``open3d_view`` (3D window and
off-screen renders; imports open3d only when used), ``samples`` (the real excerpts' ground truth).
"""
