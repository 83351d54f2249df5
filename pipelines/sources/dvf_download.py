"""DVF's hand-downloaded archives: which per-class archives a full download holds, and which of
them a folder has, for `vfcache fetch dvf --dry-run` on the folder route (`source.path`)."""

from __future__ import annotations

from pathlib import Path

from vfcache.pipelines.fetch import find_volumes
from vfcache.pipelines.sources._fetching import first_volumes
from vfcache.pipelines.sources.plan import PlannedFile

# The per-class archives a full download holds, by the release's layout (which classes have
# 0_real: the official splits and the statistics figure of the MM-Det README @ 7790ecd) and
# MM-Det issue #18 (`0_real.zip` volumes); the Drive folder's exact names are not confirmed.
EXPECTED_ARCHIVES = tuple(
    f"{klass}/{label}.zip"
    for klass, labels in (
        ("youtube", ("0_real",)),
        ("stablevideodiffusion", ("1_fake",)),
        ("videocrafter1", ("0_real", "1_fake")),
        ("zeroscope", ("0_real", "1_fake")),
        ("opensora", ("0_real", "1_fake")),
        ("sora", ("1_fake",)),
        ("pika", ("1_fake",)),
        ("stablediffusion", ("1_fake",)),
        ("stablevideo", ("1_fake",)),
    )
    for label in labels
)


def expected_archives(dest: Path) -> list[PlannedFile]:
    """Each expected per-class archive: present (with the bytes of all its volumes) when found
    below `dest` as `<class>/<label>.<ext>` or as its extracted `<class>/<label>/` folder; other
    archives found there are listed as present too."""
    visible = (
        sorted(
            p
            for p in dest.rglob("*")
            if not any(part.startswith(".") for part in p.relative_to(dest).parts)
        )
        if dest.is_dir()
        else []
    )

    def key(path: Path) -> str:  # "<class>/<label>" of `.../<class>/<label>[.ext...]`
        return f"{path.parent.name}/{path.name.split('.', 1)[0]}"

    archives = {key(p): p for p in first_volumes(visible)}
    folders = {key(p) for p in visible if p.is_dir()}
    planned = []
    for name in EXPECTED_ARCHIVES:
        wanted = name[: -len(".zip")]
        found = archives.pop(wanted, None)
        if found is None:
            planned.append(PlannedFile(name, None, present=wanted in folders))
            continue
        size = sum(volume.stat().st_size for volume in find_volumes(found))
        planned.append(PlannedFile(found.relative_to(dest).as_posix(), size, present=True))
    planned += [
        PlannedFile(p.relative_to(dest).as_posix(), p.stat().st_size, present=True)
        for p in archives.values()
    ]
    return planned
