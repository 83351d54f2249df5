"""Miniature copies of the real dataset layouts, built from tiny synthetic videos.

Each builder writes, below a folder the test serves (Hub stand-in, HTTP stand-in), the same
paths, archive kinds and metadata files as the real release, with a handful of 64x48
videos of a few frames (`vfcache.pipelines.sources.synthetic.make_video`), and returns the facts a
test checks against (videos per label and generator, official splits).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import struct
import subprocess
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from vfcache.pipelines.sources.synthetic import make_video, paint_frames

WIDTH, HEIGHT, FPS = 64, 48, 8
FRAMES = 6


def tiny_video(path: Path, *, num_frames: int = FRAMES, fake: bool = False) -> Path:
    """A 64x48 h264 mp4; the seed comes from the path, so every file has its own bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    make_video(
        path,
        width=WIDTH,
        height=HEIGHT,
        num_frames=num_frames,
        fps=FPS,
        codec="h264",
        seed=zlib.crc32(path.as_posix().encode()) % 100_000,
        artifact="flicker" if fake else None,
    )
    return path


@dataclass
class Facts:
    """What a miniature dataset holds: videos per (label, generator), and per official split."""

    by_generator: dict[tuple[int, str], int] = field(default_factory=dict)
    by_split: dict[str, int] = field(default_factory=dict)
    short_videos: int = 0  # videos too short for a 4-frame clip at 8 fps

    def add(self, label: int, generator: str, split: str | None = None, count: int = 1) -> None:
        self.by_generator[(label, generator)] = self.by_generator.get((label, generator), 0) + count
        if split is not None:
            self.by_split[split] = self.by_split.get(split, 0) + count

    @property
    def total(self) -> int:
        return sum(self.by_generator.values())


# -- AEGIS -----------------------------------------------------------------------------

AEGIS_FULL = {
    ("real", "youtube"): 3,
    ("real", "dvf"): 3,
    ("ai_gen", "sora"): 3,
    ("ai_gen", "kling"): 3,
}


def build_aegis_full(repo_dir: Path) -> Facts:
    """`AEGIS-Full`: videos/test_data/{real/{youtube,dvf},ai_gen/{sora,kling}}/*.mp4 plus files the
    config does not fetch."""
    facts = Facts()
    for (label_dir, generator), count in AEGIS_FULL.items():
        for index in range(count):
            tiny_video(
                repo_dir
                / "videos"
                / "test_data"
                / label_dir
                / generator
                / f"{generator}_{index:03d}.mp4",
                fake=label_dir == "ai_gen",
            )
            facts.add(int(label_dir == "ai_gen"), generator)
    (repo_dir / "README.md").write_text("# AEGIS-Full (miniature)\n")
    (repo_dir / "analysis").mkdir()
    (repo_dir / "analysis" / "scores.json").write_text("{}\n")
    return facts


def jpeg_frames(num_frames: int, seed: int) -> list[bytes]:
    frames = []
    for frame in paint_frames(WIDTH, HEIGHT, num_frames, seed=seed):
        ok, encoded = cv2.imencode(
            ".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]
        )
        assert ok
        frames.append(encoded.tobytes())
    return frames


# (ground_truth, generator, number of keyframes). Third-party breakdowns of the real parquet
# give the real rows' generator as "camera" (camera 218, kling 111, sora 107), not youtube/dvf.
AEGIS_ROWS = [
    ("real", "camera", 8),
    ("real", "camera", 8),
    ("real", "camera", 8),
    ("real", "camera", 3),
    ("real", "camera", 8),
    ("real", "camera", 8),
    ("ai", "sora", 8),
    ("ai", "sora", 8),
    ("ai", "kling", 8),
    ("ai", "kling", 3),
    ("ai", "sora", 8),
    ("ai", "kling", 8),
]


def keyframe_table(
    rows: list[tuple[str, str, int]], *, image_struct: bool = True, seed: int = 0
) -> pa.Table:
    """meta_data (JSON string) + keyframes (JPEG list, as `datasets.Image` stores them or plain)."""
    metas, frames = [], []
    for index, (truth, generator, count) in enumerate(rows):
        metas.append(
            json.dumps(
                {"ground_truth": truth, "generator": generator, "video_name": f"v{index:04d}"}
            )
        )
        jpegs = jpeg_frames(count, seed=seed * 1000 + index)
        frames.append(
            [{"bytes": j, "path": f"v{index:04d}_{k}.jpg"} for k, j in enumerate(jpegs)]
            if image_struct
            else jpegs
        )
    image_type = (
        pa.struct([("bytes", pa.binary()), ("path", pa.string())]) if image_struct else pa.binary()
    )
    return pa.table(
        {
            "meta_data": pa.array(metas, pa.string()),
            "keyframes": pa.array(frames, pa.list_(image_type)),
        }
    )


def build_aegis_parquet(repo_dir: Path) -> Facts:
    """`AEGIS`: data/hard_test_set-00000-of-00001.parquet, row groups of 5 rows."""
    facts = Facts()
    (repo_dir / "data").mkdir(parents=True)
    pq.write_table(
        keyframe_table(AEGIS_ROWS),
        repo_dir / "data" / "hard_test_set-00000-of-00001.parquet",
        row_group_size=5,
    )
    for truth, generator, count in AEGIS_ROWS:
        facts.add(int(truth == "ai"), generator)
        facts.short_videos += count < 4
    (repo_dir / "README.md").write_text("# AEGIS (miniature)\n")
    return facts


# -- DVF -------------------------------------------------------------------------------


DVF_CLASSES = [  # (class, label folder, videos): some classes hold only 1_fake, as in the release
    ("youtube", "0_real", 4),
    ("stablevideodiffusion", "1_fake", 4),
    ("videocrafter1", "0_real", 2),
    ("videocrafter1", "1_fake", 2),
    ("zeroscope", "0_real", 2),
    ("zeroscope", "1_fake", 2),
    ("sora", "1_fake", 3),
    ("pika", "1_fake", 2),
]
DVF_DAMAGED = "youtube/0_real/you_02.mp4"  # its bytes are damaged inside the split 0_real set


def build_dvf(data_dir: Path, splits_dir: Path, *, archives: bool) -> Facts:
    """The release `DVF/<class>/{0_real,1_fake}/*.mp4` and, apart from it, the MM-Det GitHub split
    files `splits_dir/{train,val}.json` (youtube and stablevideodiffusion; one listed video absent).

    With `archives`, each class folder ships as the release does: per-class `0_real.zip` /
    `1_fake.zip`; youtube's `0_real` is an Info-ZIP split set (`0_real.z01`, `0_real.zip`,
    made by `zip -s`) in which one member is damaged (a CRC error, MM-Det issue #18),
    stablevideodiffusion's `1_fake` comes as 7-Zip volumes `1_fake.zip.001/.002`, sora's zip
    carries macOS junk, and pika is a split tar.gz. `facts` counts what survives.
    """
    facts = Facts()
    root = data_dir / "DVF"
    train = {"youtube": {}, "stablevideodiffusion": {}}
    val = {"youtube": {}, "stablevideodiffusion": {}}
    for klass, label_dir, count in DVF_CLASSES:
        for index in range(count):
            name = f"{label_dir}/{klass[:3]}_{index:02d}.mp4"
            # youtube's videos are longer so that its zip needs two 64 KiB volumes
            tiny_video(
                root / klass / name,
                fake=label_dir == "1_fake",
                num_frames=24 if klass == "youtube" else FRAMES,
            )
            label = int(label_dir == "1_fake")
            damaged = archives and f"{klass}/{name}" == DVF_DAMAGED
            if klass in train:
                part = "val" if index == count - 1 else "train"
                (val if part == "val" else train)[klass][name] = label
                if not damaged:
                    facts.add(label, klass, part)
            else:
                facts.add(label, klass, "test")
    train["youtube"]["0_real/gone.mp4"] = 0  # listed but absent, as in the real release
    splits_dir.mkdir(parents=True, exist_ok=True)
    (splits_dir / "train.json").write_text(json.dumps(train, indent=4))
    (splits_dir / "val.json").write_text(json.dumps(val, indent=4))
    if archives:
        infozip_split(root / "youtube", "0_real", damage=DVF_DAMAGED.split("/", 1)[1])
        zip_folder(
            root / "stablevideodiffusion" / "1_fake",
            root / "stablevideodiffusion" / "1_fake.zip",
            junk=False,
        )
        cut_volumes(root / "stablevideodiffusion" / "1_fake.zip", volumes=2)
        for klass in ("videocrafter1", "zeroscope"):
            for label_dir in ("0_real", "1_fake"):
                zip_folder(root / klass / label_dir, root / klass / f"{label_dir}.zip", junk=False)
        zip_folder(root / "sora" / "1_fake", root / "sora" / "1_fake.zip", junk=True)
        tar_folder(root / "pika", root / "pika.tar.gz", volumes=2)
    return facts


def infozip_split(class_dir: Path, label_dir: str, *, damage: str) -> list[Path]:
    """`zip -s 64k` of `class_dir/label_dir` into `<label_dir>.z01 ... <label_dir>.zip`, then
    one byte of `damage`'s stored data flipped, as a bad download or disk leaves it."""
    zip_tool = shutil.which("zip")
    if zip_tool is None:
        raise RuntimeError("the DVF stand-in needs Info-ZIP's `zip` (Debian package zip)")
    subprocess.run(
        [zip_tool, "-q", "-0", "-r", "-s", "64k", f"{label_dir}.zip", label_dir],
        cwd=class_dir,
        check=True,
    )
    volumes = sorted(class_dir.glob(f"{label_dir}.z[0-9]*")) + [class_dir / f"{label_dir}.zip"]
    marker = damage.encode()
    for volume in volumes:
        data = bytearray(volume.read_bytes())
        at = data.find(b"PK\x03\x04")
        while at >= 0:  # the local header naming `damage`: flip a byte of its data
            name_len, extra_len = struct.unpack_from("<2H", data, at + 26)
            if bytes(data[at + 30 : at + 30 + name_len]) == marker:
                data[at + 30 + name_len + extra_len + 100] ^= 0xFF
                volume.write_bytes(bytes(data))
                break
            at = data.find(b"PK\x03\x04", at + 4)
        else:
            continue
        break
    else:
        raise RuntimeError(f"{damage} has no local header in {volumes}")
    _remove_tree(class_dir / label_dir)
    return volumes


def cut_volumes(archive: Path, *, volumes: int) -> list[Path]:
    """Cut `archive` into 7-Zip style byte volumes `<archive>.001, .002, ...` and remove it."""
    payload = archive.read_bytes()
    step = -(-len(payload) // volumes)
    paths = []
    for index in range(volumes):
        path = archive.parent / f"{archive.name}.{index + 1:03d}"
        path.write_bytes(payload[index * step : (index + 1) * step])
        paths.append(path)
    archive.unlink()
    return paths


def zip_folder(folder: Path, archive: Path, *, junk: bool) -> None:
    """Zip `folder` (as `<name>/...`) into `archive` and remove it; `junk` adds macOS entries."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder.parent).as_posix())
                if junk:
                    zf.writestr(
                        f"__MACOSX/{path.relative_to(folder.parent).parent.as_posix()}/._{path.name}",
                        b"\0" * 82,
                    )
        if junk:
            zf.writestr(f"{folder.name}/.DS_Store", b"\0" * 16)
    _remove_tree(folder)


def tar_folder(
    folder: Path, archive: Path, *, volumes: int = 1, volume_names: list[str] | None = None
) -> list[Path]:
    """A gzip'd tar of `folder`, optionally cut into byte volumes (`<archive>.split.aa`, ...
    or the given names)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        tf.add(folder, arcname=folder.name)
    payload = buffer.getvalue()
    _remove_tree(folder)
    if volumes == 1 and volume_names is None:
        archive.write_bytes(payload)
        return [archive]
    names = volume_names or [
        f"{archive.name}.split.{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(volumes)
    ]
    step = -(-len(payload) // len(names))
    paths = []
    for index, name in enumerate(names):
        path = archive.parent / name
        path.write_bytes(payload[index * step : (index + 1) * step])
        paths.append(path)
    return paths


def _remove_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    folder.rmdir()


# -- GenVideo --------------------------------------------------------------------------


def build_genvideo(served_dir: Path) -> Facts:
    """GenVideo-Val.zip (Real/, Fake/<Generator>/, macOS junk) plus two training archives: a
    real set cut into `Real_part_aa/ab` (gzip'd tar without extension) and `OpenSora.tar.gz`."""
    facts = Facts()
    staging = served_dir / "_staging"
    val = staging / "GenVideo-Val"
    for index in range(4):
        tiny_video(val / "Real" / f"video{index}.mp4")
        facts.add(0, "msrvtt")
    for generator, frames in (("Sora", (6, 6, 3)), ("Gen2", (3, 3, 6))):
        for index, count in enumerate(frames):
            tiny_video(
                val / "Fake" / generator / f"{generator.lower()}_{index}.mp4",
                num_frames=count,
                fake=True,
            )
            facts.add(1, generator)
            facts.short_videos += count < 4
    zip_folder(val, served_dir / "GenVideo-Val.zip", junk=True)
    for index in range(2):
        tiny_video(staging / "youku" / f"yk_{index}.mp4")
        facts.add(0, "youku")
    tar_folder(
        staging / "youku", served_dir / "Real.tar.gz", volume_names=["Real_part_aa", "Real_part_ab"]
    )
    for index in range(2):
        tiny_video(staging / "OpenSora" / f"os_{index}.mp4", fake=True)
        facts.add(1, "OpenSora")
    tar_folder(staging / "OpenSora", served_dir / "OpenSora.tar.gz")
    staging.rmdir()
    return facts


def tiny_gif(path: Path, *, num_frames: int = FRAMES, frame_ms: int = 125) -> Path:
    """A 64x48 animated GIF (I2VGEN_XL ships its videos so), written by Pillow as such tools do."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(zlib.crc32(path.as_posix().encode()))
    base = rng.integers(0, 255, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    frames = [Image.fromarray(np.roll(base, 4 * i, axis=1)) for i in range(num_frames)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)
    return path


# the shipped config's shape: three real volumes, ten generators' archives
GENVIDEO_100K_ARCHIVES = [
    {"files": ["Real_part_aa", "Real_part_ab", "Real_part_ac"]},
    {"files": ["I2VGEN_XL_part_aa"]},
    {"files": ["pika.tar.gz"]},
    {"files": ["SVD.tar.gz"]},
    {"files": ["VideoCrafter.tar.gz"]},
    {"files": ["DynamicCrafter.tar.gz"]},
    {"files": ["SD.tar.gz"]},
]
GENVIDEO_100K_GENERATORS = {  # archive -> its folder (`train_<generator>/`) and videos
    "pika.tar.gz": ("pika", 2),
    "SVD.tar.gz": ("SVD", 2),
    "VideoCrafter.tar.gz": ("VideoCrafter", 2),
    "DynamicCrafter.tar.gz": ("DynamicCrafter", 1),
    "SD.tar.gz": ("SD", 1),
}


def build_genvideo100k(served_dir: Path) -> Facts:
    """GenVideo-100K's shape: `Real/` cut into `Real_part_aa/ab/ac`, `train_<generator>/` folders
    as `<generator>.tar.gz` (pika, SVD, VideoCrafter, DynamicCrafter, SD), and `I2VGEN_XL/` of GIFs
    in `I2VGEN_XL_part_aa`; a readme note rides in Real."""
    facts = Facts()
    staging = served_dir / "_staging"
    for index in range(4):
        tiny_video(staging / "Real" / f"real_{index}.mp4")
        facts.add(0, "real")
    (staging / "Real" / "readme.txt").write_text("collected from the web\n")
    tar_folder(
        staging / "Real",
        served_dir / "Real.tar.gz",
        volume_names=["Real_part_aa", "Real_part_ab", "Real_part_ac"],
    )
    for index in range(3):
        tiny_gif(staging / "I2VGEN_XL" / f"i2v_{index}.gif")
        facts.add(1, "I2VGEN_XL")
    tar_folder(
        staging / "I2VGEN_XL", served_dir / "I2VGEN_XL.tar.gz", volume_names=["I2VGEN_XL_part_aa"]
    )
    for archive, (generator, count) in GENVIDEO_100K_GENERATORS.items():
        for index in range(count):
            tiny_video(staging / f"train_{generator}" / f"{generator}_{index}.mp4", fake=True)
            facts.add(1, generator)
        tar_folder(staging / f"train_{generator}", served_dir / archive)
    staging.rmdir()
    return facts


# -- FaceForensics++ -------------------------------------------------------------------

FFPP_PAIRS = [("000", "003"), ("001", "002"), ("004", "007"), ("005", "006")]
FFPP_SPLITS = {"train": FFPP_PAIRS[:2], "val": FFPP_PAIRS[2:3], "test": FFPP_PAIRS[3:]}


def build_ffpp(
    server_dir: Path,
    splits_dir: Path,
    *,
    methods: tuple[str, ...] = ("Deepfakes", "Face2Face"),
    compression: str = "c23",
) -> Facts:
    """The server tree `v3/misc/filelist.json`, `v3/original_sequences/youtube/<c>/videos/<id>.mp4`,
    `v3/manipulated_sequences/<Method>/<c>/videos/<a>_<b>.mp4`, and the GitHub split files."""
    facts = Facts()
    base = server_dir / "v3"
    (base / "misc").mkdir(parents=True)
    (base / "misc" / "filelist.json").write_text(json.dumps([list(p) for p in FFPP_PAIRS]))
    split_of = {pair: part for part, pairs in FFPP_SPLITS.items() for pair in pairs}
    for pair in FFPP_PAIRS:
        a, b = pair
        for video in pair:
            tiny_video(
                base / "original_sequences" / "youtube" / compression / "videos" / f"{video}.mp4"
            )
            facts.add(0, "youtube", split_of[pair])
        for method in methods:
            for target, source in ((a, b), (b, a)):
                tiny_video(
                    base
                    / "manipulated_sequences"
                    / method
                    / compression
                    / "videos"
                    / f"{target}_{source}.mp4",
                    fake=True,
                )
                facts.add(1, method, split_of[pair])
    splits_dir.mkdir(parents=True, exist_ok=True)
    for part, pairs in FFPP_SPLITS.items():
        (splits_dir / f"{part}.json").write_text(json.dumps([list(p) for p in pairs], indent=2))
    return facts


# -- WebVid ----------------------------------------------------------------------------


def build_webvid(
    served_dir: Path, base_url: str, *, count: int = 10, missing: tuple[int, ...] = (3,)
) -> Facts:
    """`webvid/results_2M_train.csv` (videoid, contentUrl, duration, page_dir, name) with URLs
    pointing at `stock/<videoid>.mp4` on the stand-in; rows in `missing` have no file there
    (404)."""
    facts = Facts()
    rows = []
    for index in range(count):
        videoid = str(1000 + index)
        page_dir = f"{index // 4 * 4:03d}_{index // 4 * 4 + 3:03d}"
        rows.append(
            {
                "videoid": videoid,
                "contentUrl": f"{base_url}/stock/{videoid}.mp4",
                "duration": "PT00H00M01S",
                "page_dir": page_dir,
                "name": f"caption {index}",
            }
        )
        if index not in missing:
            tiny_video(served_dir / "stock" / f"{videoid}.mp4")
            facts.add(0, "webvid")
    rows.append(dict(rows[0]))  # a repeated videoid, as CSV mirrors have
    (served_dir / "webvid").mkdir(parents=True, exist_ok=True)
    with open(
        served_dir / "webvid" / "results_2M_train.csv", "w", newline="", encoding="utf-8"
    ) as handle:
        writer = csv.DictWriter(
            handle, fieldnames=["videoid", "contentUrl", "duration", "page_dir", "name"]
        )
        writer.writeheader()
        writer.writerows(rows)
    return facts


__all__ = [
    "AEGIS_ROWS",
    "FFPP_PAIRS",
    "FFPP_SPLITS",
    "Facts",
    "build_aegis_full",
    "build_aegis_parquet",
    "build_dvf",
    "build_ffpp",
    "build_genvideo",
    "build_webvid",
    "jpeg_frames",
    "keyframe_table",
    "tar_folder",
    "tiny_video",
    "zip_folder",
]


# -- AEGIS's real `dvf` videos, as copies of DVF videos ---------------------------------

# (AEGIS relpath below the repo, DVF video copied below the DVF data folder, copy's size and codec):
# re-encoded at a lower quality, resized up and down, as a release built from another's videos.
AEGIS_DVF_COPIES = [
    ("videos/test_data/real/dvf/dvf_000.mp4", "DVF/youtube/0_real/you_00.mp4", (96, 72), "h264"),
    (
        "videos/test_data/real/dvf/dvf_001.mp4",
        "DVF/videocrafter1/0_real/vid_00.mp4",
        (48, 36),
        "mpeg4",
    ),
    ("videos/test_data/real/dvf/dvf_002.mp4", "DVF/zeroscope/0_real/zer_01.mp4", (128, 96), "hevc"),
]


def reencoded_copy(
    source: Path, target: Path, *, size: tuple[int, int], codec: str, quality: int = 32
) -> Path:
    """`source` decoded, resized to `size` (width, height) and encoded again with `codec`."""
    import av
    from vfcache.pipelines.sources.synthetic import encode_video

    with av.open(str(source)) as container:
        frames = [
            cv2.resize(frame.to_ndarray(format="rgb24"), size, interpolation=cv2.INTER_AREA)
            for frame in container.decode(video=0)
        ]
    target.parent.mkdir(parents=True, exist_ok=True)
    encode_video(target, frames, codec=codec, fps=FPS, quality=quality)
    return target


def build_aegis_with_dvf_copies(repo_dir: Path, dvf_data_dir: Path) -> dict[str, str]:
    """`AEGIS-Full` whose `real/dvf` videos are re-encoded, resized copies of DVF videos (as the
    AEGIS paper says its DVF reals come from DVF); `dvf_data_dir` holds `build_dvf`'s `DVF/`.
    Returns {AEGIS relpath: DVF relpath below `dvf_data_dir`}."""
    build_aegis_full(repo_dir)
    for aegis_relpath, dvf_relpath, size, codec in AEGIS_DVF_COPIES:
        reencoded_copy(dvf_data_dir / dvf_relpath, repo_dir / aegis_relpath, size=size, codec=codec)
    return {aegis: dvf for aegis, dvf, _, _ in AEGIS_DVF_COPIES}
