"""Readable text on images: a label on a filled tag, and a heads-up display block."""

from __future__ import annotations

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX


def text_size(text: str, scale: float) -> tuple[int, int, int]:
    """``(width, height, baseline)`` of ``text`` in pixels at ``scale``."""
    (tw, th), base = cv2.getTextSize(text, FONT, scale, 1)
    return tw, th, base


def put_label(img: np.ndarray, text: str, anchor_xy: tuple[int, int], color, scale: float = 0.45) -> None:
    """Write ``text`` on a tag of ``color`` whose bottom-left corner sits at ``anchor_xy`` (pixels),
    moved inside the image so the tag is never cut off. Dark or light text, whichever reads better."""
    tw, th, base = text_size(text, scale)
    h, w = img.shape[:2]
    x = int(min(max(anchor_xy[0], 0), max(w - tw - 4, 0)))
    y = int(min(max(anchor_xy[1], th + base + 2), h - 1))
    cv2.rectangle(img, (x, y - th - base - 2), (x + tw + 4, y), color, -1)
    luminance = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    cv2.putText(img, text, (x + 2, y - base), FONT, scale, ink, 1, cv2.LINE_AA)


def draw_hud(img: np.ndarray, lines: list[str], scale: float = 0.5) -> np.ndarray:
    """Draw ``lines`` top-left on a translucent dark panel, in place; returns ``img``."""
    if not lines:
        return img
    sizes = [text_size(s, scale) for s in lines]
    line_h = max(th + base for _, th, base in sizes) + 4
    width = max(tw for tw, _, _ in sizes) + 12
    height = line_h * len(lines) + 6
    h, w = img.shape[:2]
    roi = img[0 : min(height, h), 0 : min(width, w)]
    roi[:] = (roi.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken to 40 %
    for k, s in enumerate(lines):
        cv2.putText(img, s, (6, line_h * (k + 1)), FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def box_text(boxes, i: int, class_names, show_scores: bool = True, compact: bool = False) -> str:
    """``Car .87 #3``: class name, score (predictions) and track id (tracked boxes).

    ``compact`` writes only ``#3`` for tracked boxes (the colour already says the track).
    """
    tracked = boxes.track_ids is not None and boxes.track_ids[i] >= 0
    if compact and tracked:
        return f"#{int(boxes.track_ids[i])}"
    label = int(boxes.labels[i])
    parts = [str(class_names[label]) if class_names is not None and 0 <= label < len(class_names) else str(label)]
    if show_scores and boxes.scores is not None:
        parts.append(f"{boxes.scores[i]:.2f}".lstrip("0"))
    if tracked:
        parts.append(f"#{int(boxes.track_ids[i])}")
    return " ".join(parts)


def pt(xy) -> tuple[int, int]:
    """A float (x, y) pixel position as the int tuple OpenCV draws at."""
    return round(float(xy[0])), round(float(xy[1]))
