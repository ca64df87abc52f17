"""Labelled clips for the end-to-end measurement: faces on backgrounds, with gaps, and a timeline.

    clip, timeline = generate(faces, labels, rows, ClipSpec(seed=13, scenes=400), out_dir)

A clip is a sequence of scenes. Each scene is one face segment (one face, or 2-3 faces side by
side) followed by a gap with no face, on one background: flat grey, grey with strong sensor noise,
or a natural picture from scikit-image (camera, coffee, chelsea, ... in grey, randomly scaled,
shifted and mirrored). Faces are 48x48 images (FER2013 PublicTest rows for `make e2e`; never
Training rows) upscaled to 80-260 px, pasted with a soft edge, lit with their own gain and offset,
drifting slowly and zooming a little over their segment. Every frame gets a little sensor noise.

Everything is drawn from one seeded generator, so the same spec and faces give the same clip
(bit for bit before MJPEG encoding). The timeline (JSON) lists every segment with its frames, its
background, and for each face its label, its row in the face set and its true box on every frame
(the pasted square, full-frame pixels). Nothing from a dataset is written besides the clip itself,
which goes to a scratch folder (runs/ is not tracked).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from device.runtime.labels import FACE_LABELS

NATURAL = ("camera", "coffee", "chelsea", "rocket", "brick", "grass", "gravel", "clock", "moon", "page")
BACKGROUNDS = ("flat", "noisy", "natural")
# Real faces in those pictures, (x, y, w, h) in the picture's own pixels around the whole head. A
# detector that finds the cameraman is right, yet the scorer would count his track as false, so his
# head is painted over from its surroundings (timeline version 2; in version 1 BlazeFace tracked
# him in 6 of its 10 tracks that lay on no labelled face).
PICTURE_FACES = {"camera": ((160, 60, 130, 170),)}
TIMELINE_VERSION = 2


@dataclass(frozen=True)
class ClipSpec:
    seed: int = 13
    scenes: int = 400
    fps: float = 15.0
    width: int = 640
    height: int = 480
    multi_fraction: float = 0.25  # share of scenes with 2-3 faces
    min_face: int = 80  # side of the pasted 48x48 face image, full-frame pixels
    max_face: int = 260
    max_multi_face: int = 180  # several faces side by side must fit in 640 px
    segment_s: tuple[float, float] = (1.6, 2.6)  # how long a face segment lasts
    gap_s: tuple[float, float] = (1.0, 1.6)  # face-free time after each face segment
    max_drift_px_s: float = 25.0  # slow motion
    max_zoom: float = 0.1  # the face grows or shrinks by up to this fraction over its segment
    sensor_noise: float = 2.0  # per-frame Gaussian noise on every frame (grey levels)

    def key(self, faces_id: str) -> str:
        """Names the clip: same spec and same faces, same file."""
        text = json.dumps({"spec": asdict(self), "faces": faces_id, "v": TIMELINE_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def natural_background(name: str) -> np.ndarray:
    """A scikit-image sample picture in grey (scikit-image is a dev dependency)."""
    from skimage import data

    image = getattr(data, name)()
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.ndim == 3:
        image = cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2GRAY)
    if name in PICTURE_FACES:
        mask = np.zeros(image.shape, np.uint8)
        for x, y, w, h in PICTURE_FACES[name]:
            mask[y:y + h, x:x + w] = 255
        image = cv2.inpaint(image, mask, 5, cv2.INPAINT_TELEA)
    return image


def _background(kind: str, spec: ClipSpec, rng: np.random.Generator, natural: dict) -> tuple[np.ndarray, str]:
    """A float32 background and its description; `noisy` also returns its per-frame noise level."""
    w, h = spec.width, spec.height
    if kind == "flat":
        level = float(rng.uniform(40, 215))
        return np.full((h, w), level, np.float32), f"flat {level:.0f}"
    if kind == "noisy":
        level = float(rng.uniform(60, 190))
        texture = cv2.GaussianBlur(rng.normal(0, 1, (h // 8, w // 8)).astype(np.float32), (0, 0), 1.5)
        texture = cv2.resize(texture, (w, h), interpolation=cv2.INTER_LINEAR)
        texture *= float(rng.uniform(5, 20)) / max(float(texture.std()), 1e-6)
        return level + texture, f"noisy {level:.0f}"
    name = NATURAL[int(rng.integers(len(NATURAL)))]
    image = natural[name]
    ih, iw = image.shape
    scale = max(w / iw, h / ih) * float(rng.uniform(1.0, 1.6))
    big = cv2.resize(image, (round(iw * scale), round(ih * scale)), interpolation=cv2.INTER_LINEAR)
    x0 = int(rng.integers(0, big.shape[1] - w + 1))
    y0 = int(rng.integers(0, big.shape[0] - h + 1))
    crop = big[y0:y0 + h, x0:x0 + w].astype(np.float32)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    gain = float(rng.uniform(0.7, 1.15))
    return np.ascontiguousarray(crop * gain), f"natural {name}"


def _feather(size: int) -> np.ndarray:
    """Alpha for a pasted face: 1 inside, a linear ramp over the outer ~6% (no hard square edge)."""
    ramp = max(2, size // 16)
    edge = np.minimum(np.arange(size), np.arange(size)[::-1]).astype(np.float32)
    line = np.clip((edge + 0.5) / ramp, 0.0, 1.0)
    return np.outer(line, line)


@dataclass
class _Face:
    row: int
    label: int
    image: np.ndarray  # 48x48 uint8
    start: np.ndarray  # x, y of the top-left corner at the first frame
    end: np.ndarray
    size0: float
    size1: float
    gain: float
    offset: float

    def box(self, t: float) -> tuple[int, int, int, int]:
        size = round(self.size0 + (self.size1 - self.size0) * t)
        first, last = self.start + self.size0 / 2, self.end + self.size1 / 2  # centres
        centre = first + (last - first) * t
        return round(centre[0] - size / 2), round(centre[1] - size / 2), size, size


def _place_faces(count: int, spec: ClipSpec, duration_s: float, rng: np.random.Generator,
                 pick: list[int], faces: np.ndarray, labels: np.ndarray) -> list[_Face] | None:
    """Sizes, paths and lighting for `count` faces whose paths never come within 16 px of each other."""
    largest = spec.max_face if count == 1 else spec.max_multi_face
    placed: list[_Face] = []
    for row in pick:
        for _attempt in range(50):
            size0 = float(rng.uniform(spec.min_face, largest))
            zoom = 1 + rng.uniform(-spec.max_zoom, spec.max_zoom)
            size1 = float(np.clip(size0 * zoom, spec.min_face, largest))
            big = max(size0, size1)
            start = np.array([rng.uniform(0, spec.width - big), rng.uniform(0, spec.height - big)])
            drift = rng.uniform(0, spec.max_drift_px_s) * duration_s
            angle = rng.uniform(0, 2 * np.pi)
            end = np.clip(start + drift * np.array([np.cos(angle), np.sin(angle)]), 0,
                          [spec.width - big, spec.height - big])
            face = _Face(int(row), int(labels[row]), faces[row], start, end, size0, size1,
                         float(rng.uniform(0.6, 1.3)), float(rng.uniform(-25, 25)))
            lo = np.minimum(start, end) - 16
            hi = np.maximum(start, end) + big + 16
            if all(_apart((lo, hi), other, spec) for other in placed):
                placed.append(face)
                break
        else:
            return None
    return placed


def _apart(extent: tuple[np.ndarray, np.ndarray], other: _Face, spec: ClipSpec) -> bool:
    big = max(other.size0, other.size1)
    lo = np.minimum(other.start, other.end)
    hi = np.maximum(other.start, other.end) + big
    return bool(np.any(extent[1] <= lo) or np.any(hi <= extent[0]))


def _paste(frame: np.ndarray, face: _Face, box: tuple[int, int, int, int]) -> None:
    x, y, size, _ = box
    image = cv2.resize(face.image, (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    image = image * face.gain + face.offset
    alpha = _feather(size)
    region = frame[y:y + size, x:x + size]
    region[...] = alpha * image + (1 - alpha) * region


def plan(spec: ClipSpec, faces: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> dict:
    """The timeline, without rendering: segments, faces, true boxes per frame."""
    rng = np.random.default_rng(spec.seed)
    order = list(rng.permutation(rows))
    segments: list[dict] = []
    frame = 0

    def take(count: int) -> list[int]:
        while len(order) < count:
            order.extend(rng.permutation(rows))  # more faces wanted than given: reuse, reshuffled
        return [order.pop(0) for _ in range(count)]

    for scene in range(spec.scenes):
        count = 1 if rng.random() >= spec.multi_fraction else int(rng.integers(2, 4))
        kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
        background_seed = int(rng.integers(2**31))
        duration = float(rng.uniform(*spec.segment_s))
        frames = max(2, round(duration * spec.fps))
        placed = None
        while placed is None:
            placed = _place_faces(count, spec, duration, rng, take(count), faces, labels)
        gap_frames = max(1, round(float(rng.uniform(*spec.gap_s)) * spec.fps))
        noise = float(rng.uniform(6, 18)) if kind == "noisy" else spec.sensor_noise
        common = {"scene": scene, "background": kind, "background_seed": background_seed, "noise": noise}
        face_entries = []
        for i, face in enumerate(placed):
            boxes = [face.box(k / max(frames - 1, 1)) for k in range(frames)]
            face_entries.append({"face": i, "row": face.row, "label": face.label,
                                 "emotion": FACE_LABELS[face.label], "gain": round(face.gain, 3),
                                 "offset": round(face.offset, 1), "boxes": [list(b) for b in boxes]})
        segments.append({"index": len(segments), "kind": "single" if count == 1 else "multi",
                         "start_frame": frame, "end_frame": frame + frames, **common, "faces": face_entries})
        frame += frames
        segments.append({"index": len(segments), "kind": "gap", "start_frame": frame,
                         "end_frame": frame + gap_frames, **common, "faces": []})
        frame += gap_frames
    return {"version": TIMELINE_VERSION, "spec": asdict(spec), "fps": spec.fps, "width": spec.width,
            "height": spec.height, "frames": frame, "segments": segments}


def render(timeline: dict, faces: np.ndarray) -> Iterator[np.ndarray]:
    """Every frame of the clip as grey uint8, in order."""
    spec = ClipSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in timeline["spec"].items()})
    natural = {name: natural_background(name) for name in NATURAL}
    noise_rng = np.random.default_rng(spec.seed + 1)
    bank = noise_rng.normal(0, 1, (16, spec.height, spec.width)).astype(np.float32)
    backgrounds: dict[int, np.ndarray] = {}
    for segment in timeline["segments"]:
        scene = segment["scene"]
        if scene not in backgrounds:
            backgrounds.clear()
            rng = np.random.default_rng(segment["background_seed"])
            backgrounds[scene], _ = _background(segment["background"], spec, rng, natural)
        background = backgrounds[scene]
        pasted = [_Face(f["row"], f["label"], faces[f["row"]], np.zeros(2), np.zeros(2), 0, 0, f["gain"],
                        f["offset"]) for f in segment["faces"]]
        for k in range(segment["end_frame"] - segment["start_frame"]):
            frame = background.copy()
            for face, entry in zip(pasted, segment["faces"], strict=True):
                _paste(frame, face, tuple(entry["boxes"][k]))
            index = segment["start_frame"] + k
            frame += bank[index % 16][:, ::-1] * segment["noise"] if index % 32 >= 16 else \
                bank[index % 16] * segment["noise"]
            yield np.clip(frame + 0.5, 0, 255).astype(np.uint8)


def write_clip(path: Path, frames: Iterator[np.ndarray], fps: float, width: int, height: int) -> Path:
    """Motion-JPEG AVI (OpenCV reads it everywhere without external codecs), grey frames."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height), isColor=False)
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {path} (OpenCV has no MJPEG writer here)")
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
    return path


def generate(faces: np.ndarray, labels: np.ndarray, rows: np.ndarray, spec: ClipSpec, out_dir: Path,
             faces_id: str) -> tuple[Path, Path]:
    """Write clip and timeline into out_dir (named by spec and faces); reuse them when present."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"e2e_{spec.key(faces_id)}"
    clip, timeline_path = out_dir / f"{stem}.avi", out_dir / f"{stem}.json"
    if clip.is_file() and timeline_path.is_file():
        return clip, timeline_path
    timeline = plan(spec, faces, labels, rows)
    timeline["faces_id"] = faces_id
    partial = clip.with_suffix(".partial.avi")
    write_clip(partial, render(timeline, faces), spec.fps, spec.width, spec.height)
    partial.rename(clip)
    timeline_path.write_text(json.dumps(timeline, separators=(",", ":")))
    return clip, timeline_path
