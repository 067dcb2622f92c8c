"""The reference store: which image id each tag and digest reference names (repositories.json).

The file is exactly what Docker writes (seed 004), compact JSON with sorted keys, no newline:

    {"Repositories":{"busybox":{"busybox:latest":"sha256:<image id>",
                                "busybox@sha256:<manifest digest>":"sha256:<image id>"}}}

keyed first by the familiar repository name, then by the familiar reference string.

Vocabulary:
- tag reference: `name:tag`; a name alone means `name:latest`.
- digest reference: `name@sha256:<manifest digest>`, recorded when an image is pulled by or
  with a manifest digest; it never moves to another image (Docker: "cannot overwrite digest").
- a reference with both a tag and a digest is looked up and deleted by its digest alone and
  cannot be stored.

Contract: every change rewrites the whole file with atomic_write before returning, so the file
is always one complete version. A missing file is an empty store; a corrupt one is an
InvalidArgument naming the file, and is never overwritten. Lookups that fail raise NotFound
with Docker's wording (`No such image: busybox:latest`). The store is safe across threads of
one process (one daemon owns a data root).
"""

import json
import os
import threading

from hull.errors import Conflict, InvalidArgument, NotFound
from hull.fsutil import atomic_write
from hull.images import ids
from hull.images.reference import Reference, parse
from hull.layout import DataRoot


class ReferenceStore:
    """repositories.json, loaded once and rewritten atomically on every change."""

    def __init__(self, root: DataRoot) -> None:
        self.path = root.repositories_json
        self._lock = threading.Lock()
        # familiar name -> familiar reference string -> (reference, image id)
        self._repos: dict[str, dict[str, tuple[Reference, str]]] = {}
        self._load()

    # -- file ---------------------------------------------------------------------------------

    def _corrupt(self, detail: str) -> InvalidArgument:
        return InvalidArgument(f"reference store {self.path} is corrupt: {detail}")

    def _load(self) -> None:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, ValueError) as e:
            raise self._corrupt(f"not JSON ({e})") from None
        repos = doc.get("Repositories") if isinstance(doc, dict) else None
        if not isinstance(doc, dict) or not isinstance(repos, dict | None):
            raise self._corrupt('expected {"Repositories": {...}}')
        for repo_name, entries in (repos or {}).items():
            if not isinstance(entries, dict):
                raise self._corrupt(f"repository {repo_name!r} is not an object")
            for ref_str, image_id in entries.items():
                try:
                    ref = parse(ref_str)
                    ids.check_sha256(image_id, "image id")
                except InvalidArgument as e:
                    raise self._corrupt(f"entry {ref_str!r}: {e.message}") from None
                if ref.familiar_name != repo_name or ref.is_name_only or (ref.tag and ref.digest):
                    raise self._corrupt(f"entry {ref_str!r} does not belong under {repo_name!r}")
                self._repos.setdefault(repo_name, {})[ref.familiar()] = (ref, image_id)

    def _save(self) -> None:
        doc = {
            "Repositories": {
                repo: {key: image_id for key, (_, image_id) in entries.items()}
                for repo, entries in self._repos.items()
                if entries
            }
        }
        data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        atomic_write(self.path, data, mode=0o600)

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _coerce(ref: Reference | str) -> Reference:
        if isinstance(ref, Reference):
            return ref
        return parse(ref)

    @staticmethod
    def _lookup_key(ref: Reference) -> Reference:
        """The form a reference is stored under: digest wins over tag, a bare name means :latest."""
        return ref.favor_digest().with_default_tag()

    # -- API ----------------------------------------------------------------------------------

    def add(self, ref: Reference | str, image_id: str, force: bool = False) -> None:
        """Point a tag or digest reference at `image_id`.

        A bare name is tagged `latest`. Moving an existing tag to another image needs `force`
        (else Conflict); a digest reference never moves (Conflict even when forced), as in
        Docker. Re-adding the same mapping is a no-op.
        """
        ref = self._coerce(ref)
        ids.check_sha256(image_id, "image id")
        if ref.tag is not None and ref.digest is not None:
            raise InvalidArgument(f"cannot set a reference with both a tag and a digest: {ref.familiar()}")
        ref = ref.with_default_tag()
        if ref.familiar_name == ids.SHA256:
            raise InvalidArgument("refusing to create an ambiguous tag using digest algorithm as name")
        key = ref.familiar()
        with self._lock:
            entries = self._repos.get(ref.familiar_name, {})
            old = entries.get(key)
            if old is not None:
                if old[1] == image_id:
                    return
                if ref.digest is not None:
                    raise Conflict(f"cannot overwrite digest {ref.digest}")
                if not force:
                    raise Conflict(
                        f"Conflict: Tag {key} is already set to image {old[1]}, "
                        "if you want to replace it, please use the force option"
                    )
            self._repos.setdefault(ref.familiar_name, {})[key] = (ref, image_id)
            try:
                self._save()
            except BaseException:
                self._restore(ref.familiar_name, key, old)
                raise

    def _restore(self, repo: str, key: str, old: tuple[Reference, str] | None) -> None:
        """Undo one in-memory change whose save failed, so memory keeps matching the file."""
        entries = self._repos.setdefault(repo, {})
        if old is None:
            entries.pop(key, None)
        else:
            entries[key] = old
        if not entries:
            del self._repos[repo]

    def get(self, ref: Reference | str) -> str:
        """The image id `ref` names (a bare name means :latest); NotFound otherwise."""
        ref = self._lookup_key(self._coerce(ref))
        with self._lock:
            found = self._repos.get(ref.familiar_name, {}).get(ref.familiar())
        if found is None:
            raise NotFound(f"No such image: {ref.familiar()}")
        return found[1]

    def delete(self, ref: Reference | str) -> str:
        """Remove one reference; returns the image id it named. NotFound if it is not stored."""
        ref = self._lookup_key(self._coerce(ref))
        key = ref.familiar()
        with self._lock:
            entries = self._repos.get(ref.familiar_name, {})
            old = entries.pop(key, None)
            if old is None:
                raise NotFound(f"No such image: {key}")
            if not entries:
                del self._repos[ref.familiar_name]
            try:
                self._save()
            except BaseException:
                self._restore(ref.familiar_name, key, old)
                raise
        return old[1]

    def references(self, image_id: str) -> list[Reference]:
        """Every reference to `image_id`, sorted by their full form (tags and digests)."""
        ids.check_sha256(image_id, "image id")
        with self._lock:
            found = [ref for entries in self._repos.values() for ref, iid in entries.values() if iid == image_id]
        return sorted(found, key=str)

    def all(self) -> list[tuple[Reference, str]]:
        """Every (reference, image id), sorted by the reference's full form."""
        with self._lock:
            found = [pair for entries in self._repos.values() for pair in entries.values()]
        return sorted(found, key=lambda pair: str(pair[0]))

    def delete_image(self, image_id: str) -> list[Reference]:
        """Remove every reference to `image_id` (one rewrite); returns what was removed."""
        ids.check_sha256(image_id, "image id")
        with self._lock:
            removed: list[tuple[str, str, tuple[Reference, str]]] = []
            for repo, entries in list(self._repos.items()):
                for key, pair in list(entries.items()):
                    if pair[1] == image_id:
                        removed.append((repo, key, pair))
                        del entries[key]
                if not entries:
                    del self._repos[repo]
            if not removed:
                return []
            try:
                self._save()
            except BaseException:
                for repo, key, pair in removed:
                    self._repos.setdefault(repo, {})[key] = pair
                raise
        return sorted((pair[0] for _, _, pair in removed), key=str)
