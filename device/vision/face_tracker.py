"""Stable track ids for faces between (and across) Haar detections.

Haar runs only every N frames. On detection frames, detections are matched to live tracks by
box overlap (greedy, highest IoU first); a track that finds no detection for more than
`max_missed` detection rounds has left. In between, each track follows its face by matching the
patch seen at its last detection inside a small search window of the downscaled frame: a few
hundred microseconds per face, enough to keep up with a panning camera. The follower also sees a
face leave: a track whose patch matches nowhere on `follow_lost_frames` frames in a row ends there,
between detection rounds, so a false detection in the gap it leaves cannot carry it on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from device.config import TrackerSection
from device.vision.box_geometry import Box, crop, expand_and_clip, inset_box, iou, scale_box

# How far (in box widths) a face may move between two frames. Half a box let the follower jump onto
# background a box away when the face had gone (make e2e: a track held a wall for 3.7 s); a quarter
# box per frame is still 4 box widths a second at 15 fps, and searching it costs a quarter as much.
FOLLOW_REACH = 0.25
# A matched detection moves a track's box this far towards the detection (centre and size): Haar's
# box jitters by several percent between rounds, and the crop follows it.
BOX_BLEND_CENTRE = 0.5
BOX_BLEND_SIZE = 0.5
# The follower's patch is the middle of the box (this much cut from every side): BlazeFace's box is
# framed as FER2013 frames a face, 1.18 face widths, and a patch with that much background went on
# matching the background after the face had gone (make e2e: a track outlived its face by 1.27 s).
TEMPLATE_INSET = 0.15


def blend(old: Box, new: Box, centre: float, size: float) -> Box:
    """A box between `old` and `new`: its centre and side moved by those fractions towards `new`."""
    w = (1 - size) * old.w + size * new.w
    h = (1 - size) * old.h + size * new.h
    cx = (1 - centre) * (old.x + old.w / 2) + centre * (new.x + new.w / 2)
    cy = (1 - centre) * (old.y + old.h / 2) + centre * (new.y + new.h / 2)
    return Box(round(cx - w / 2), round(cy - h / 2), round(w), round(h))


@dataclass
class Track:
    track_id: int
    box: Box
    started_s: float
    missed: int = 0
    template: np.ndarray | None = field(default=None, repr=False)
    follow_score: float = 1.0  # how well the face patch matched at the latest follow (1 after a detection)
    weak_follows: int = 0  # follows in a row, since the last detection, that matched below the minimum


@dataclass
class TrackChanges:
    started: list[Track]
    ended: list[Track]


def match_boxes(tracked: list[Box], detected: list[Box],
                threshold: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Greedy IoU matching: (track index, detection index) pairs, unmatched tracks, unmatched detections."""
    candidates = sorted(((iou(t, d), ti, di) for ti, t in enumerate(tracked)
                         for di, d in enumerate(detected)), reverse=True)
    used_t: set[int] = set()
    used_d: set[int] = set()
    pairs = []
    for overlap, ti, di in candidates:
        if overlap < threshold:
            break
        if ti not in used_t and di not in used_d:
            pairs.append((ti, di))
            used_t.add(ti)
            used_d.add(di)
    return (pairs, [i for i in range(len(tracked)) if i not in used_t],
            [i for i in range(len(detected)) if i not in used_d])


class FaceTracker:
    def __init__(self, section: TrackerSection) -> None:
        self.iou_threshold = section.iou_threshold
        self.max_missed = section.max_missed
        self.follow_enabled = section.follow
        self.follow_min_score = section.follow_min_score
        self.follow_lost_frames = section.follow_lost_frames
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, detections: list[Box], small: np.ndarray, factor: float, time_s: float,
               admit: Callable[[Box], bool] | None = None) -> TrackChanges:
        """Fold one round of detections (full-frame boxes) into the tracks. A detection that matches
        no track starts one only if `admit` (the face gate, when on) accepts it."""
        pairs, lost, fresh = match_boxes([t.box for t in self.tracks], detections, self.iou_threshold)
        for ti, di in pairs:
            track = self.tracks[ti]
            track.box = blend(track.box, detections[di], BOX_BLEND_CENTRE, BOX_BLEND_SIZE)
            track.missed, track.follow_score, track.weak_follows = 0, 1.0, 0
            track.template = self._template(small, track.box, factor)
        ended = []
        for ti in lost:
            track = self.tracks[ti]
            track.missed += 1
            if self.follow_enabled:
                self._follow(track, small, factor)
            # Neither the detector nor the follower sees the face on this frame: it has gone. End the
            # track now rather than after max_missed more rounds (it outlived its face by seconds).
            gone = self.follow_enabled and track.follow_score < self.follow_min_score
            if gone or track.missed > self.max_missed:
                ended.append(track)
        started = []
        for di in fresh:
            box = detections[di]
            if admit is not None and not admit(box):
                continue
            track = Track(self._next_id, box, time_s, template=self._template(small, box, factor))
            self._next_id += 1
            started.append(track)
        self.tracks = [t for t in self.tracks if t not in ended] + started
        return TrackChanges(started, ended)

    def follow(self, small: np.ndarray, factor: float) -> list[Track]:
        """Move each track's box to where its face patch matches best near its last position; end
        (remove and return) the tracks whose patch has matched nowhere for `follow_lost_frames`."""
        if not self.follow_enabled:
            return []
        for track in self.tracks:
            self._follow(track, small, factor)
        if not self.follow_lost_frames:
            return []
        ended = [t for t in self.tracks if t.weak_follows >= self.follow_lost_frames]
        self.tracks = [t for t in self.tracks if t not in ended]
        return ended

    def _follow(self, track: Track, small: np.ndarray, factor: float) -> None:
        if track.template is None:
            return
        height, width = small.shape
        th, tw = track.template.shape
        box = scale_box(track.box, 1.0 / factor)
        inner = inset_box(box, TEMPLATE_INSET)
        window = expand_and_clip(inner, FOLLOW_REACH * box.w / max(1, inner.w), width, height)
        if window.w <= tw or window.h <= th:
            return
        scores = cv2.matchTemplate(crop(small, window), track.template, cv2.TM_CCOEFF_NORMED)
        _, best, _, (bx, by) = cv2.minMaxLoc(scores)
        track.follow_score = best
        track.weak_follows = track.weak_follows + 1 if best < self.follow_min_score else 0
        if best >= self.follow_min_score:
            dx, dy = window.x + bx - inner.x, window.y + by - inner.y
            track.box = Box(track.box.x + round(dx * factor), track.box.y + round(dy * factor),
                            track.box.w, track.box.h)

    def end_all(self) -> list[Track]:
        """End every track (the source has run out or the daemon is stopping)."""
        ended, self.tracks = self.tracks, []
        return ended

    @staticmethod
    def _template(small: np.ndarray, box: Box, factor: float) -> np.ndarray | None:
        patch = crop(small, inset_box(scale_box(box, 1.0 / factor), TEMPLATE_INSET))
        return patch.copy() if min(patch.shape) >= 8 else None
