"""PyAV access: open a file and say why it is not a readable video, scan its packets for
probe, and decode only the frames a clip needs.

Decoding plan: the needed frames (presentation-order indices, sorted) are grouped into runs;
a run starts at the keyframe at or before its first frame, and a new run (a new seek) starts
whenever the next needed frame lies beyond a keyframe that comes after the last needed one,
so widely spaced frames never make us decode the frames between them. Between a keyframe
and a needed frame, non-reference frames (most B-frames) are skipped by the decoder
(`skip_frame=NONREF` for packets that are not needed): nothing depends on them, and it
saves 15-25% of the decoding on x264 streams. Decoded frames are
matched to indices by pts (decode order differs from presentation order with B-frames). If
a seek lands after the first frame of its run (a demuxer whose index disagrees with the
packets), the run is retried from an earlier keyframe, and finally from the file's start.

A keyframe flag is not a promise of a clean random-access point: open GOPs, recovery-point
I-frames (intra refresh, camera encoders that flag every I-frame) and HEVC CRA pictures
may need frames from before the keyframe. The decoder is asked to output the frames it
cannot reconstruct (`output_corrupt`) instead of dropping them, so each one is seen and
checked: after a seek, every frame decoded from the keyframe on (presentation order) until
the run's last needed frame must be clean (FFmpeg's corrupt flag, decode errors). On a bad
start the run is retried from an earlier keyframe, and in the end from the start of the
stream, with a warning that says so; a needed frame still corrupt from the stream start
fails the read (`corrupt_frames`). Frames already handed out came earlier in decode order
than the first bad frame, so they cannot depend on it and stay valid.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import av
from vfcache.pipelines.decode._video import (
    REASON_CORRUPT_FRAMES,
    REASON_DECODE_ERROR,
    REASON_NO_VIDEO_STREAM,
    REASON_NOT_A_VIDEO,
    REASON_TRUNCATED,
    REASON_UNSUPPORTED_CODEC,
    REASON_ZERO_FRAMES,
    VideoInfo,
    VideoReadError,
    index_of_time,
    s_to_ticks,
    ticks_to_s,
)
from vfcache.pipelines.decode.frames import frame_duration_s, video_duration_s

log = logging.getLogger(__name__)

# Demuxers FFmpeg uses for still images and text art: never a video for this project.
_STILL_FORMATS = {"image2", "image2pipe", "tty", "bin", "xbin", "adf", "idf"}
_TEXT_ART_CODECS = {"ansi", "bintext", "xbin", "idf"}
_MP4_MAGIC = b"ftyp"  # bytes 4..8 of an ISO-BMFF file (mp4, mov, m4v, 3gp)
_MATROSKA_MAGIC = b"\x1a\x45\xdf\xa3"
_FPS_AGREEMENT = 0.005  # container rate trusted when within 0.5% of the rate measured on pts
_RETRY_KEYFRAMES = 2
# A seek flushes the decoder, losing the frames it holds for reordering (up to ~4 with
# B-frames), and restarts demuxing; decoding through fewer frames than this is cheaper.
SEEK_MIN_SKIP_FRAMES = 8  # earlier keyframes tried when a seek lands late, before the file start


def _unopenable_reason(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError:
        return REASON_NOT_A_VIDEO
    if head[4:8] == _MP4_MAGIC or head[:4] == _MATROSKA_MAGIC:
        return REASON_TRUNCATED  # a container header without its index: a cut-off download
    return REASON_NOT_A_VIDEO


def open_container(path: str) -> av.container.InputContainer:
    """Open `path` for reading; raise VideoReadError when FFmpeg cannot, or sees no video."""
    try:
        container = av.open(path, metadata_errors="ignore")
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except av.error.FFmpegError as err:
        reason = _unopenable_reason(path)
        detail = (
            "an MP4/MKV header without its index"
            if reason == REASON_TRUNCATED
            else "no known container"
        )
        raise VideoReadError(reason, f"FFmpeg cannot open it ({detail}: {err})", path=path) from err
    name = container.format.name
    if name in _STILL_FORMATS or name.endswith("_pipe"):
        container.close()
        raise VideoReadError(
            REASON_NOT_A_VIDEO,
            f"FFmpeg reads it as {name!r}, a still image or text, not a video",
            path=path,
        )
    return container


def video_stream(container: av.container.InputContainer, path: str) -> av.VideoStream:
    """The first video stream that is not cover art, with a decoder."""
    streams = [
        s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic
    ]
    if not streams:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise VideoReadError(
            REASON_NO_VIDEO_STREAM, f"streams found: {', '.join(kinds)}", path=path
        )
    stream = streams[0]
    if stream.codec_context is None:
        raise VideoReadError(
            REASON_UNSUPPORTED_CODEC,
            f"PyAV's FFmpeg has no decoder for the codec of video stream #{stream.index}",
            path=path,
        )
    if stream.codec_context.name in _TEXT_ART_CODECS:
        raise VideoReadError(
            REASON_NOT_A_VIDEO,
            f"codec {stream.codec_context.name!r} is text art, not a video",
            path=path,
        )
    return stream


# ---------------------------------------------------------------- probe


def _declared_duration_s(stream: av.video.stream.VideoStream) -> Optional[float]:
    """The stream duration a Matroska muxer wrote in its DURATION tag, if any."""
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    match = re.fullmatch(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)", tag.strip()) if tag else None
    if not match:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _check_complete(path: str, container, stream, times_s: list[float]) -> None:
    """Raise `truncated` when the file ends before what its own header promises."""
    size = os.path.getsize(path)
    index_end = max((e.pos + e.size for e in stream.index_entries if e.pos >= 0), default=0)
    if index_end > size:
        raise VideoReadError(
            REASON_TRUNCATED,
            f"the index points to byte {index_end} but the file has {size} bytes",
            path=path,
        )
    declared_s = _declared_duration_s(stream) if "matroska" in container.format.name else None
    if declared_s and times_s:
        shown_s = max(times_s) - min(times_s)
        frame_s = frame_duration_s(sorted(times_s))
        if shown_s + 2 * frame_s + 0.05 < declared_s * 0.97:
            raise VideoReadError(
                REASON_TRUNCATED,
                f"packets cover {shown_s:.2f} s but the stream declares {declared_s:.2f} s",
                path=path,
            )


def _rotation_cw(frame: av.VideoFrame, path: str) -> int:
    ccw = int(frame.rotation)  # PyAV: counter-clockwise angle of the display matrix
    rotation = (-ccw) % 360
    snapped = int(90 * round(rotation / 90)) % 360
    if snapped != rotation:
        log.warning(
            "%s: display rotation %d deg is not a multiple of 90; using %d", path, rotation, snapped
        )
    return snapped


def probe(path: str) -> VideoInfo:
    """Demux every packet of the video stream (no decoding but the first frame)."""
    with open_container(path) as container:
        stream = video_stream(container, path)
        stream.codec_context.thread_count = 1  # one frame is decoded; threads only add delay
        time_base = stream.time_base
        times_s, key_times_s, first_frame, decode_err, no_pts = [], [], None, None, 0
        try:
            for packet in container.demux(stream):
                if packet.size and not packet.is_discard:
                    if packet.pts is None:
                        no_pts += 1
                    else:
                        times_s.append(ticks_to_s(packet.pts, time_base))
                        if packet.is_keyframe:
                            key_times_s.append(times_s[-1])
                if first_frame is None and (packet.size or packet.pts is None):
                    try:
                        frames = packet.decode()  # the empty packet at the end flushes
                        first_frame = frames[0] if frames else None
                    except av.error.FFmpegError as err:
                        decode_err = err
        except av.error.FFmpegError as err:
            reason = REASON_TRUNCATED if times_s else REASON_DECODE_ERROR
            raise VideoReadError(
                reason, f"demuxing stopped after {len(times_s)} packets ({err})", path=path
            ) from err
        if not times_s and not no_pts:
            raise VideoReadError(REASON_ZERO_FRAMES, "the video stream has no packets", path=path)
        if no_pts:
            raise VideoReadError(
                REASON_DECODE_ERROR,
                f"{no_pts} packets carry no presentation "
                "timestamp (a raw elementary stream?); remux it into mp4/mkv",
                path=path,
            )
        _check_complete(path, container, stream, times_s)
        if first_frame is None:
            raise VideoReadError(
                REASON_DECODE_ERROR, f"no packet decodes to a frame ({decode_err})", path=path
            ) from decode_err
        codec = stream.codec_context.name
        container_name = container.format.name
        nominal_fps = float(stream.average_rate) if stream.average_rate else 0.0
    return _video_info(path, codec, container_name, times_s, key_times_s, first_frame, nominal_fps)


def _video_info(
    path: str,
    codec: str,
    container_name: str,
    times_s: list[float],
    key_times_s: list[float],
    first_frame: av.VideoFrame,
    nominal_fps: float,
) -> VideoInfo:
    unique = sorted(set(times_s))
    if len(unique) != len(times_s):
        log.warning(
            "%s: %d packets repeat another packet's pts; keeping one frame per pts",
            path,
            len(times_s) - len(unique),
        )
    pts_s = tuple(unique)
    keyframes = tuple(sorted({bisect.bisect_left(pts_s, t) for t in key_times_s}))
    rotation = _rotation_cw(first_frame, path)
    coded_h, coded_w = first_frame.height, first_frame.width
    height, width = (coded_w, coded_h) if rotation in (90, 270) else (coded_h, coded_w)
    span_s = pts_s[-1] - pts_s[0]
    fps = (len(pts_s) - 1) / span_s if span_s > 0 else nominal_fps
    if nominal_fps and abs(nominal_fps - fps) <= _FPS_AGREEMENT * fps:
        fps = nominal_fps  # the container's exact rate (30000/1001...) when the pts agree
    return VideoInfo(
        codec=codec,
        width=width,
        height=height,
        rotation=rotation,
        fps=fps,
        num_frames=len(pts_s),
        duration_s=video_duration_s(pts_s),
        pts_s=pts_s,
        keyframe_indices=keyframes,
        container=container_name,
        pix_fmt=first_frame.format.name,
    )


# ---------------------------------------------------------------- decoding what is needed


@dataclass(frozen=True)
class DecodeRun:
    """Frames decoded after one seek: from `start_index` (a keyframe; None = the file start)
    forward to the last of `frame_indices`."""

    start_index: Optional[int]
    frame_indices: tuple[int, ...]


def plan_decode_runs(
    needed: Sequence[int],
    keyframe_indices: Sequence[int],
    *,
    min_skip_frames: int = SEEK_MIN_SKIP_FRAMES,
) -> list[DecodeRun]:
    """Group sorted unique frame indices into runs, one seek each (pure).

    A needed frame starts a new run when a keyframe lies between it and the previous needed
    frame and seeking to that keyframe skips at least `min_skip_frames` frames."""
    if not needed:
        return []
    if not keyframe_indices:  # unknown: let the demuxer find the keyframe before the first
        return [DecodeRun(needed[0], tuple(needed))]
    runs: list[tuple[Optional[int], list[int]]] = []
    for index in needed:
        position = bisect.bisect_right(keyframe_indices, index) - 1
        start = keyframe_indices[position] if position >= 0 else None
        if runs and (start is None or start - runs[-1][1][-1] - 1 < min_skip_frames):
            runs[-1][1].append(index)
        else:
            runs.append((start, [index]))
    return [DecodeRun(start, tuple(indices)) for start, indices in runs]


class PyAVSource:
    """One open video; yields (presentation index, frame) after seeking; counts decoded frames."""

    def __init__(
        self, path: str, info: VideoInfo, decoder_threads: int = 1, *, skip_nonref: bool = True
    ):
        self.path, self.info, self.decoder_threads = path, info, decoder_threads
        self.skip_nonref = skip_nonref
        self.frames_decoded = 0
        self.seeks = 0
        self.bad_starts: list[str] = []  # why a seek's start was abandoned, one line each
        self.corrupt_unneeded: set[int] = set()  # unneeded frames corrupt from the stream start
        self.reached_end = False
        self._container = None
        self._open()

    def _open(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = open_container(self.path)
        self._stream = video_stream(self._container, self.path)
        context = self._stream.codec_context
        context.options = {"flags": "+output_corrupt"}  # see the module docstring
        context.thread_count = self.decoder_threads
        if self.decoder_threads > 1:
            context.thread_type = "AUTO"
        self._half_tick_s = float(self._stream.time_base) / 2
        self._fresh = True  # nothing demuxed yet: positioned at the file start

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> PyAVSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def index_of(self, frame_or_packet: av.VideoFrame | av.Packet) -> Optional[int]:
        """Presentation-order index of a decoded frame or a demuxed packet, by its pts."""
        if frame_or_packet.pts is None:
            return None
        time_s = ticks_to_s(frame_or_packet.pts, self._stream.time_base)
        return index_of_time(self.info.pts_s, time_s, self._half_tick_s)

    def _position(self, start_index: Optional[int]) -> None:
        if start_index is None or (start_index == 0 and self._fresh):
            if not self._fresh:
                self._open()  # back to the file start without trusting the demuxer's seek
            return
        self.seeks += 1
        ticks = s_to_ticks(self.info.pts_s[start_index], self._stream.time_base)
        try:
            self._container.seek(ticks, stream=self._stream, backward=True)
        except av.error.FFmpegError as err:
            log.debug(
                "%s: seek to frame %d failed (%s); reading from the start",
                self.path,
                start_index,
                err,
            )
            self._open()

    def frames_from(
        self, start_index: Optional[int], needed: Optional[set[int]] = None
    ) -> Iterator[tuple[Optional[int], av.VideoFrame]]:
        """Seek to `start_index` (None: the file start) and yield every decoded frame.

        With `needed`, frames nothing refers to (non-reference B-frames) are not decoded
        unless they are needed: they cannot change any later frame."""
        self._position(start_index)
        self._fresh = False
        self.reached_end = False
        context = self._stream.codec_context
        packets = self._container.demux(self._stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                self.reached_end = True
                return
            except av.error.FFmpegError as err:
                raise VideoReadError(
                    REASON_TRUNCATED, f"demuxing failed ({err})", path=self.path
                ) from err
            if needed is not None and packet.size:
                context.skip_frame = "DEFAULT" if self.index_of(packet) in needed else "NONREF"
            try:
                frames = packet.decode()
            except av.error.FFmpegError as err:
                raise VideoReadError(
                    REASON_DECODE_ERROR, f"decoding failed ({err})", path=self.path
                ) from err
            for frame in frames:
                self.frames_decoded += 1
                yield self.index_of(frame), frame

    def _start_candidates(self, run: DecodeRun) -> list[Optional[int]]:
        keyframes = self.info.keyframe_indices
        earlier = [k for k in keyframes if run.start_index is not None and k < run.start_index]
        candidates = [run.start_index] + earlier[::-1][:_RETRY_KEYFRAMES] + [None]
        return list(dict.fromkeys(candidates))  # unique, in order

    def _decode_from(
        self, start: Optional[int], pending: set[int], last: int, *, hand_out: bool = True
    ) -> Iterator[tuple[int, av.VideoFrame]]:
        """Decode from `start` (None: the stream start) up to frame `last`; yield each frame of
        `pending` (removing it) while the decoding is clean. Returns None when it got through,
        or why this start is bad: it landed after the first pending frame, a frame from the
        keyframe on is corrupt, or a packet failed to decode. From the stream start, only a
        corrupt needed frame counts (an unneeded one has no earlier start to try), and it
        raises `corrupt_frames`."""
        first = min(pending)
        landed_at = None
        try:
            for index, frame in self.frames_from(start, pending if self.skip_nonref else None):
                if index is None:
                    continue
                if landed_at is None:
                    landed_at = index
                    if index > first:
                        return f"the seek for frame {first} landed at frame {index}"
                if frame.is_corrupt and start is None and index not in pending:
                    self.corrupt_unneeded.add(index)
                if frame.is_corrupt and start is None and index in pending:
                    raise VideoReadError(
                        REASON_CORRUPT_FRAMES,
                        f"frame {index} is corrupt even "
                        "when decoded from the start of the stream (FFmpeg's "
                        "corrupt or concealment flag)",
                        path=self.path,
                    )
                if frame.is_corrupt and start is not None and index >= start:
                    return f"frame {index} is corrupt after a seek to the keyframe at frame {start}"
                if index in pending:
                    pending.discard(index)
                    if hand_out:
                        yield index, frame
                if index >= last or not pending:
                    return None
        except VideoReadError as err:
            if start is None or err.reason != REASON_DECODE_ERROR:
                raise
            return f"a packet after the keyframe at frame {start} failed to decode ({err.detail})"
        return None  # the stream ended: what is still pending is reported by the caller

    def decode_run(self, run: DecodeRun) -> Iterator[tuple[int, av.VideoFrame]]:
        """Yield (index, frame) for each frame of `run`; a frame that a retry decodes comes
        after the frames the abandoned start already gave."""
        pending = set(run.frame_indices)
        last = run.frame_indices[-1]
        for start in self._start_candidates(run):
            bad = yield from self._decode_from(start, pending, last)
            if bad is None or not pending:
                break
            if start is not None:
                self._note_bad_start(start, bad, pending)
        if pending:
            missing = sorted(pending)
            reason = REASON_TRUNCATED if self.reached_end else REASON_DECODE_ERROR
            raise VideoReadError(
                reason,
                f"{len(missing)} needed frames never decoded (first "
                f"missing: {missing[:5]}) of {self.info.num_frames} probed",
                path=self.path,
            )

    def _note_bad_start(self, start: Optional[int], why: str, pending: set[int]) -> None:
        self.bad_starts.append(why)
        log.warning(
            "%s: %s; decoding frames %d.. again from an earlier keyframe or the stream start",
            self.path,
            why,
            min(pending),
        )

    def first_bad_start(self, run: DecodeRun) -> Optional[str]:
        """Why seeking to `run.start_index` would not give clean frames up to the run's first
        frame, or None when it does (decodes that stretch, hands nothing out). For readers
        that cannot see FFmpeg's corrupt flag themselves (decord)."""
        if run.start_index is None:
            return None
        first = run.frame_indices[0]
        check = self._decode_from(run.start_index, {first}, first, hand_out=False)
        try:
            next(check)  # hands nothing out: runs to its end at once
        except StopIteration as finished:
            return finished.value
        raise AssertionError("_decode_from handed a frame out with hand_out=False")

    def decode_needed(self, needed: Sequence[int]) -> Iterator[tuple[int, av.VideoFrame]]:
        """Yield (index, frame) for the sorted unique `needed` indices, decoding only what
        they need."""
        for run in plan_decode_runs(needed, self.info.keyframe_indices):
            yield from self.decode_run(run)
