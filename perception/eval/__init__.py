"""Detection metrics: KITTI AP, nuScenes mAP / NDS, Waymo AP / APH, Argoverse 2 CDS, classification.

Each module implements one official definition and cites it; tracking metrics live in
``perception.eval.tracking``. Import the module you need (``from perception.eval.kitti import
evaluate_kitti``): nothing heavy is imported here.
"""
