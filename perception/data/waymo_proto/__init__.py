"""The subset of the Waymo Open Dataset v1 ``Frame`` proto that the loader reads, built at import.

Field names and numbers follow ``waymo_open_dataset/dataset.proto`` and ``label.proto`` (proto2);
fields left out here are skipped by the parser as unknown fields, so whole records still decode.
Enums (camera / laser names, label types, difficulty levels) are read as their int32 values,
which is the same wire encoding. No protoc is needed: the descriptors are written below as a
table and turned into message classes with ``google.protobuf.message_factory``.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_T = descriptor_pb2.FieldDescriptorProto
D, FLT, I32, I64, STR, BYT = _T.TYPE_DOUBLE, _T.TYPE_FLOAT, _T.TYPE_INT32, _T.TYPE_INT64, _T.TYPE_STRING, _T.TYPE_BYTES
REP = "repeated"
PACKAGE = "perception.waymo_v1"

# message -> [(field, number, scalar type or message name, "repeated" or "")]
SCHEMA: dict[str, list[tuple[str, int, int | str, str]]] = {
    "Transform": [("transform", 1, D, REP)],  # 4x4 row-major
    "MatrixShape": [("dims", 1, I32, REP)],
    "MatrixFloat": [("data", 1, FLT, REP), ("shape", 2, "MatrixShape", "")],
    "CameraCalibration": [
        ("name", 1, I32, ""), ("intrinsic", 2, D, REP), ("extrinsic", 3, "Transform", ""),
        ("width", 4, I32, ""), ("height", 5, I32, ""),
    ],
    "LaserCalibration": [
        ("name", 1, I32, ""), ("beam_inclinations", 2, D, REP), ("beam_inclination_min", 3, D, ""),
        ("beam_inclination_max", 4, D, ""), ("extrinsic", 5, "Transform", ""),
    ],
    "Context": [
        ("name", 1, STR, ""), ("camera_calibrations", 2, "CameraCalibration", REP),
        ("laser_calibrations", 3, "LaserCalibration", REP),
    ],
    "CameraImage": [("name", 1, I32, ""), ("image", 2, BYT, ""), ("pose", 3, "Transform", ""), ("pose_timestamp", 5, D, "")],
    "RangeImage": [("range_image_compressed", 2, BYT, ""), ("range_image_pose_compressed", 4, BYT, "")],
    "Laser": [("name", 1, I32, ""), ("ri_return1", 2, "RangeImage", ""), ("ri_return2", 3, "RangeImage", "")],
    "Box": [
        ("center_x", 1, D, ""), ("center_y", 2, D, ""), ("center_z", 3, D, ""), ("width", 4, D, ""),
        ("length", 5, D, ""), ("height", 6, D, ""), ("heading", 7, D, ""),
    ],
    "Metadata": [("speed_x", 1, D, ""), ("speed_y", 2, D, ""), ("accel_x", 3, D, ""), ("accel_y", 4, D, ""),
                 ("speed_z", 5, D, ""), ("accel_z", 6, D, "")],
    "Label": [
        ("box", 1, "Box", ""), ("metadata", 2, "Metadata", ""), ("type", 3, I32, ""), ("id", 4, STR, ""),
        ("detection_difficulty_level", 5, I32, ""), ("tracking_difficulty_level", 6, I32, ""),
        ("num_lidar_points_in_box", 7, I32, ""), ("most_visible_camera_name", 11, STR, ""),
        ("camera_synced_box", 12, "Box", ""), ("num_top_lidar_points_in_box", 13, I32, ""),
    ],
    "CameraLabels": [("name", 1, I32, ""), ("labels", 2, "Label", REP)],
    "Frame": [
        ("context", 1, "Context", ""), ("timestamp_micros", 2, I64, ""), ("pose", 3, "Transform", ""),
        ("images", 4, "CameraImage", REP), ("lasers", 5, "Laser", REP), ("laser_labels", 6, "Label", REP),
        ("camera_labels", 8, "CameraLabels", REP), ("projected_lidar_labels", 9, "CameraLabels", REP),
    ],
}  # fmt: skip


def _build() -> dict[str, type]:
    fd = descriptor_pb2.FileDescriptorProto(name="perception_waymo_v1.proto", package=PACKAGE, syntax="proto2")
    for msg_name, fields in SCHEMA.items():
        msg = fd.message_type.add(name=msg_name)
        for name, number, kind, label in fields:
            f = msg.field.add(name=name, number=number)
            f.label = _T.LABEL_REPEATED if label == REP else _T.LABEL_OPTIONAL
            if isinstance(kind, str):
                f.type, f.type_name = _T.TYPE_MESSAGE, f".{PACKAGE}.{kind}"
            else:
                f.type = kind
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}")) for name in SCHEMA}


MESSAGES = _build()
Frame = MESSAGES["Frame"]
MatrixFloat = MESSAGES["MatrixFloat"]

# Enum values of dataset.proto / label.proto
CAMERA_NAMES = {
    1: "FRONT",
    2: "FRONT_LEFT",
    3: "FRONT_RIGHT",
    4: "SIDE_LEFT",
    5: "SIDE_RIGHT",
    6: "REAR_LEFT",
    7: "REAR",
    8: "REAR_RIGHT",
}
# lidars are prefixed: the camera and lidar enums share names (FRONT, SIDE_LEFT, SIDE_RIGHT)
LASER_NAMES = {1: "LIDAR_TOP", 2: "LIDAR_FRONT", 3: "LIDAR_SIDE_LEFT", 4: "LIDAR_SIDE_RIGHT", 5: "LIDAR_REAR"}
LABEL_TYPES = {0: "Unknown", 1: "Vehicle", 2: "Pedestrian", 3: "Sign", 4: "Cyclist"}
