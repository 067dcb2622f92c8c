"""Hand-made layer tars for tests: (name, content) files and (name/, None) directories, PAX format."""

import io
import tarfile

MTIME = 1_700_000_000


def make_layer_tar(entries: list[tuple[str, bytes | None]], mtime: int = MTIME) -> bytes:
    """A layer tar of these entries, in order; files 0644, directories 0755, all owned by root."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mtime = mtime
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
