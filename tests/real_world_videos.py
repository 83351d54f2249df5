"""Videos with the shapes real footage ships in, made with PyAV for the decoding tests.

Two families:

- `SEEK_FIXTURES`: streams whose keyframe flags are not all clean random-access points:
  x264 open GOPs (non-IDR I-frames with a recovery point, leading B-frames that reference
  the previous GOP), x264 periodic intra refresh (the recovery-point "keyframes" camera
  encoders write: frames after one are only complete once the refresh wave has passed;
  also in High 4:4:4, the camera file's profile), HEVC with CRA pictures and RASL leading
  pictures, MPEG-2 open GOPs, and 10-bit H.264. A reader that trusts every keyframe flag
  gives wrong or concealed frames after a seek on some of these.
- `SHAPE_FIXTURES`: containers and pixel formats as they ship: High 4:4:4, full-range
  yuvj420p, 10-bit, a GIF with bytes after its trailer, MPEG-4 with B-frames in AVI (no
  presentation timestamps: FFmpeg reorders them), WebM written live (no duration, no cues),
  rotations of 90, -90 and 180 degrees, and a 3-frame video.

Content is the project's painted test footage (`paint_frames`: noise, motion, each frame
coded with its index), so the encoders behave as on camera material rather than on flat
colours. Every fixture is a pure function of its arguments (single-threaded encoders).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from vfcache.pipelines.sources.painted_frames import paint_frames

WIDTH, HEIGHT, FPS = 96, 64, 24
FRAMES = 72  # 3 s at 24 fps: three GOPs of 24 frames


@dataclass(frozen=True)
class Fixture:
    name: str  # file name; the suffix picks the container
    encoder: str
    pix_fmt: str = "yuv420p"
    options: dict = field(default_factory=dict)
    frames: int = FRAMES
    rotation_deg: int = 0  # clockwise display rotation written as a display matrix
    container_options: dict = field(default_factory=dict)
    trailing_bytes: bytes = b""  # appended after the muxer closed the file


_X264 = "scenecut=0:keyint=24:min-keyint=24:threads=1:sliced-threads=0"
SEEK_FIXTURES = (
    Fixture(
        "x264_open_gop.mp4", "libx264", options={"x264-params": _X264 + ":open-gop=1:bframes=3"}
    ),
    Fixture(
        "x264_intra_refresh.mp4",
        "libx264",
        options={"x264-params": _X264 + ":intra-refresh=1:bframes=0"},
    ),
    Fixture(
        "x264_444_intra_refresh.mp4",
        "libx264",
        pix_fmt="yuv444p",
        options={"x264-params": _X264 + ":intra-refresh=1:bframes=0"},
    ),
    Fixture(
        "x264_10bit_open_gop.mkv",
        "libx264",
        pix_fmt="yuv420p10le",
        options={"x264-params": _X264 + ":open-gop=1:bframes=3"},
    ),
    Fixture(
        "hevc_cra.mp4",
        "libx265",
        options={
            "x265-params": "keyint=24:min-keyint=24:scenecut=0:open-gop=1:bframes=3:"
            "frame-threads=1:pools=none:log-level=error"
        },
    ),
    Fixture("mpeg2_open_gop.mkv", "mpeg2video", options={"g": "12", "bf": "2", "threads": "1"}),
)

SHAPE_FIXTURES = (
    Fixture("high444.mp4", "libx264", pix_fmt="yuv444p", options={"x264-params": _X264}),
    Fixture("full_range.mp4", "libx264", pix_fmt="yuvj420p", options={"x264-params": _X264}),
    Fixture("ten_bit.mkv", "libx264", pix_fmt="yuv420p10le", options={"x264-params": _X264}),
    Fixture(
        "trailing.gif", "gif", pix_fmt="rgb8", frames=30, trailing_bytes=b"\x00" * 37 + b"junk"
    ),
    Fixture("bframes.avi", "mpeg4", options={"bf": "2", "g": "12", "qscale": "4", "threads": "1"}),
    Fixture(
        "live.webm",
        "libvpx-vp9",
        options={"deadline": "realtime", "cpu-used": "8", "threads": "1"},
        container_options={"live": "1"},
    ),
    Fixture("rot90.mp4", "libx264", rotation_deg=90, options={"x264-params": _X264}),
    Fixture("rot270.mp4", "libx264", rotation_deg=270, options={"x264-params": _X264}),
    Fixture("rot180.mp4", "libx264", rotation_deg=180, options={"x264-params": _X264}),
    Fixture("three_frames.mp4", "libx264", frames=3, options={"x264-params": _X264}),
)


def write_fixture(folder: Path, fixture: Fixture) -> Path:
    """Encode `fixture` into `folder`; returns its path."""
    path = folder / fixture.name
    buffer = io.BytesIO()
    container_format = {
        "mp4": "mp4",
        "mkv": "matroska",
        "avi": "avi",
        "gif": "gif",
        "webm": "webm",
    }[path.suffix[1:]]
    with av.open(
        buffer,
        "w",
        format=container_format,
        options={"fflags": "+bitexact", **fixture.container_options},
    ) as output:
        stream = output.add_stream(fixture.encoder, rate=FPS, options=dict(fixture.options))
        upright = paint_frames(WIDTH, HEIGHT, fixture.frames, seed=7, fps=FPS)
        turns = fixture.rotation_deg // 90
        stored_h, stored_w = (WIDTH, HEIGHT) if turns % 2 else (HEIGHT, WIDTH)
        stream.width, stream.height, stream.pix_fmt = stored_w, stored_h, fixture.pix_fmt
        stream.codec_context.time_base = Fraction(1, FPS)
        if fixture.rotation_deg:
            stream.set_display_rotation(-fixture.rotation_deg)  # PyAV takes counter-clockwise
        for index, pixels in enumerate(upright):
            stored = np.ascontiguousarray(np.rot90(pixels, k=turns))
            frame = av.VideoFrame.from_ndarray(stored, format="rgb24").reformat(
                format=fixture.pix_fmt
            )
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    path.write_bytes(buffer.getvalue() + fixture.trailing_bytes)
    return path


def keyframe_packets(path: Path) -> list[int]:
    """Packet numbers (demux order) the container flags as keyframes."""
    with av.open(str(path)) as container:
        return [
            n
            for n, packet in enumerate(container.demux(container.streams.video[0]))
            if packet.size and packet.is_keyframe
        ]


def cut_from_packet(source: Path, target: Path, first_packet: int) -> None:
    """Copy `source`'s video packets from `first_packet` on (demux order) into `target`, as a
    recording that starts in the middle of a stream does: its first frame is a recovery
    point, not a clean start."""
    with av.open(str(source)) as reader, av.open(str(target), "w") as writer:
        stream_in = reader.streams.video[0]
        stream_out = writer.add_stream_from_template(stream_in)
        for number, packet in enumerate(reader.demux(stream_in)):
            if number < first_packet or not packet.size:
                continue
            packet.stream = stream_out
            writer.mux(packet)
