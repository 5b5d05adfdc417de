"""A Hugging Face hub on 127.0.0.1 for download tests: just the part of the hub's HTTP API
that ``huggingface_hub``'s ``snapshot_download`` (2.x) uses, serving model repositories held
in memory (``hub.repos[repo_id] = {filename: bytes}``).

What ``snapshot_download(repo_id, revision=..., local_dir=..., endpoint=URL)`` asks for:

- ``GET /api/models/<repo>[/revision/<rev>]`` (``HfApi.model_info`` / ``repo_info``): JSON
  with ``id``, ``sha`` (the commit, 40 hex digits) and ``siblings`` (``rfilename``; with
  ``?blobs=True`` also ``size``, ``blobId`` and, for LFS files, ``lfs.sha256``);
- ``GET /api/models/<repo>/tree/<rev>?recursive=True`` (``list_repo_tree``): a JSON list of
  ``{"type": "file", "path", "size", "oid", "lfs": {"oid", "size", "pointerSize"}}``, one
  page (no ``Link`` header);
- ``HEAD`` then ``GET /<repo>/resolve/<rev>/<file>`` (``hf_hub_download``): the HEAD's
  ``X-Repo-Commit`` (required), ``ETag`` (required; the SHA-256 for LFS files, the git blob
  id otherwise, as the hub's) and ``Content-Length`` headers; the GET's body (``Range:
  bytes=N-`` honoured).

No ``X-Xet-Hash`` / ``X-Xet-Refresh-Route`` header and no ``xetHash`` in the tree: with those,
``huggingface_hub`` would fetch through the Xet storage service (``hf_xet``) instead of the
plain GET. Errors carry the hub's ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``,
``EntryNotFound``), which ``huggingface_hub`` turns into its own exception types.
"""

from __future__ import annotations

import hashlib
import json
import re
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from tests.helpers.http import running

LFS_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".h5", ".msgpack", ".onnx")
_INFO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")
_TREE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/.*)?$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


def git_blob_id(body: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest()


def commit_of(files: dict[str, bytes]) -> str:
    """A stable 40-hex 'commit' of a repository's content."""
    h = hashlib.sha1()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + git_blob_id(files[name]).encode())
    return h.hexdigest()


def _is_lfs(name: str) -> bool:
    return name.endswith(LFS_SUFFIXES)


class _HubHandler(BaseHTTPRequestHandler):
    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _json(self, obj, **headers):
        self._send(200, json.dumps(obj).encode(), {"Content-Type": "application/json", **headers})

    def _error(self, status: int, code: str, head: bool = False, **headers):
        self._send(status, json.dumps({"error": code}).encode(), {"X-Error-Code": code, **headers}, head=head)

    def _repo(self, repo: str, rev: str | None, head: bool = False):
        """The repository's files and commit, or ``None`` after sending the hub's error."""
        files = self.server.repos.get(repo)
        if files is None:
            self._error(404, "RepoNotFound", head)
            return None
        commit = commit_of(files)
        if rev not in (None, "main", commit):
            self._error(404, "RevisionNotFound", head)
            return None
        return files, commit

    def _route(self, head: bool):
        srv = self.server
        url = urlsplit(self.path)
        path, query = unquote(url.path), url.query
        srv.log.append((self.command, path, query, self.headers.get("Authorization"), self.headers.get("Range")))
        if m := _TREE.match(path):
            found = self._repo(m["repo"], m["rev"])
            if found:
                files, _ = found
                entries = []
                for name in sorted(files):
                    body = files[name]
                    entry = {"type": "file", "path": name, "size": len(body), "oid": git_blob_id(body)}
                    if _is_lfs(name):
                        entry["lfs"] = {"oid": hashlib.sha256(body).hexdigest(), "size": len(body), "pointerSize": 134}
                    entries.append(entry)
                self._json(entries)
            return
        if m := _INFO.match(path):
            found = self._repo(m["repo"], m["rev"])
            if found:
                files, commit = found
                blobs = "blobs=true" in query.lower()
                siblings = []
                for name in sorted(files):
                    body, sib = files[name], {"rfilename": name}
                    if blobs:
                        sib.update(size=len(body), blobId=git_blob_id(body))
                        if _is_lfs(name):
                            sib["lfs"] = {"sha256": hashlib.sha256(body).hexdigest(), "size": len(body), "pointerSize": 134}
                    siblings.append(sib)
                self._json({"id": m["repo"], "modelId": m["repo"], "sha": commit, "private": False, "siblings": siblings})
            return
        if m := _RESOLVE.match(path):
            found = self._repo(m["repo"], m["rev"], head)
            if not found:
                return
            files, commit = found
            body = files.get(m["file"])
            if body is None:
                self._error(404, "EntryNotFound", head, **{"X-Repo-Commit": commit})
                return
            if not head and m["file"] in srv.fail_get:
                self._send(500, b"internal error", {"X-Repo-Commit": commit})
                return
            etag = hashlib.sha256(body).hexdigest() if _is_lfs(m["file"]) else git_blob_id(body)
            headers = {"X-Repo-Commit": commit, "ETag": f'"{etag}"', "Accept-Ranges": "bytes",
                       "Content-Type": "application/octet-stream"}
            start, status = 0, 200
            rng = self.headers.get("Range")
            if not head and rng and rng.startswith("bytes=") and rng.endswith("-"):
                start, status = int(rng[6:-1]), 206
                headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
            self._send(status, body[start:], headers, head=head)
            return
        self._send(404, b"not found")

    def do_GET(self):  # noqa: N802 (http.server's name)
        self._route(head=False)

    def do_HEAD(self):  # noqa: N802
        self._route(head=True)

    def log_message(self, *args):
        pass


@contextmanager
def hub_server():
    """A running hub with ``.repos`` (repo id -> {filename: bytes}), ``.log`` (method, path,
    query, Authorization header, Range header), ``.fail_get`` (file names whose GET answers
    HTTP 500) and ``.url`` (the endpoint)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _HubHandler)
    httpd.repos, httpd.log, httpd.fail_get = {}, [], set()
    with running(httpd):
        yield httpd
