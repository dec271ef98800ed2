"""A synthetic, read-only S3 endpoint that serves the version listing of a huge bucket
without storing it: keys, versions and delete markers are computed from their index.

It answers the requests a snapshot (and `s5cmd ls --all-versions`) makes: HEAD bucket,
GetBucketVersioning, ListObjectVersions (prefix, key and version-id markers, max-keys, url
encoding) in SeaweedFS's element order and escaping, and ListObjectsV2 (the listing audit's);
and CopyObject, at once, storing nothing (a sync into an empty bucket: the client's copy
ceiling). Single objects (PUT, conditional on If-None-Match/If-Match, GET, HEAD, DELETE) are
kept in memory beside the computed ones, unlisted: the small records a command keeps in the
bucket's reserved folder (its catalog's name, its history, its lock). It pages in key order (it does not name itself SeaweedFS), so listings page it
plainly. Signatures are not
checked. It exists to measure the client alone at a scale the real server cannot be filled
to on this machine (a million versions takes SeaweedFS ~50 minutes to write here): memory
that must stay flat, and CPU per 1,000 versions without the server's share of the cores.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from aiohttp import web

from backup_my_bucket.localserver import free_ports

WHEN = "2026-01-01T00:00:00Z"
LATER = "2026-01-01T00:00:02Z"
ETAG = "&#34;428c9950e33338d80dd28fb02a2f3893&#34;"
OWNER = "<Owner><ID>admin</ID><DisplayName>admin</DisplayName></Owner>"


def tree_key(i: int) -> str:
    return f"d{i // 5000:04d}/s{(i // 100) % 50:02d}/f{i % 100:05d}.bin"


def flat_key(i: int) -> str:
    return f"obj{i:08d}"


@dataclass(frozen=True)
class SyntheticBucket:
    """Key i has one version; every 5th a second, newer one; every 20th a delete marker on
    top. So ~1.25 versions per key, and 95 % of the keys are live."""

    keys: int
    key_of: Callable[[int], str]

    def __len__(self) -> int:
        return self.keys

    def __getitem__(self, i: int) -> str:
        return self.key_of(i)

    @property
    def versions(self) -> int:
        n = self.keys
        return n + (n + 4) // 5 + (n + 19) // 20

    @property
    def live(self) -> int:
        return self.keys - (self.keys + 19) // 20

    @staticmethod
    def history(i: int) -> list[tuple[str, str]]:
        """(version id, kind) newest first; kind is "v" (version) or "d" (delete marker)."""
        entries = []
        if i % 20 == 0:
            entries.append((f"d{i}", "d"))
        if i % 5 == 0:
            entries.append((f"b{i}", "v"))
        entries.append((f"a{i}", "v"))
        return entries

    def entries(self, prefix: str, key_marker: str, version_marker: str) -> Iterator[str]:
        """XML of every entry after the markers, in listing order."""
        start = bisect.bisect_left(self, prefix) if prefix else 0
        if key_marker:
            at = bisect.bisect_left(self, key_marker)
            if version_marker and at < self.keys and self[at] == key_marker:
                ids = [vid for vid, _ in self.history(at)]
                skip = ids.index(version_marker) + 1 if version_marker in ids else len(ids)
                yield from self._key_entries(at, skip)
                at += 1
            else:
                at = bisect.bisect_right(self, key_marker)
            start = max(start, at)
        for i in range(start, self.keys):
            if not self[i].startswith(prefix):
                return
            yield from self._key_entries(i, 0)

    def objects(self, name: str, query: Mapping[str, str]) -> str:
        """A ListObjectsV2 page (the listing audit's): live keys in key order."""
        prefix = query.get("prefix", "")
        after = query.get("continuation-token") or query.get("start-after", "")
        max_keys = min(int(query.get("max-keys", "1000")), 1000)
        i = max(bisect.bisect_right(self, after), bisect.bisect_left(self, prefix))
        contents: list[str] = []
        last = ""
        while i < self.keys and self[i].startswith(prefix) and len(contents) <= max_keys:
            if i % 20:  # every 20th key has a delete marker on top
                when = LATER if i % 5 == 0 else WHEN
                contents.append(
                    f"<Contents><Key>{self[i]}</Key><LastModified>{when}</LastModified>"
                    f"<ETag>{ETAG}</ETag><Size>64</Size>{OWNER}"
                    "<StorageClass>STANDARD</StorageClass></Contents>"
                )
                last = self[i] if len(contents) <= max_keys else last
            i += 1
        truncated = len(contents) > max_keys
        token = f"<NextContinuationToken>{last}</NextContinuationToken>" if truncated else ""
        return (
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Name>{name}</Name><Prefix>{prefix}</Prefix><MaxKeys>{max_keys}</MaxKeys>"
            f"<IsTruncated>{str(truncated).lower()}</IsTruncated>{token}"
            + "".join(contents[:max_keys])
            + "</ListBucketResult>"
        )

    def _key_entries(self, i: int, skip: int) -> Iterator[str]:
        key = self[i]
        for n, (vid, kind) in enumerate(self.history(i)):
            if n < skip:
                continue
            latest = "true" if n == 0 else "false"
            head = f"<Key>{key}</Key><VersionId>{vid}</VersionId><IsLatest>{latest}</IsLatest>"
            if kind == "d":
                yield f"<DeleteMarker>{head}{OWNER}<LastModified>{LATER}</LastModified></DeleteMarker>"
            else:
                when = LATER if vid.startswith("b") else WHEN
                yield (
                    f"<Version>{head}<ETag>{ETAG}</ETag><Size>64</Size>{OWNER}"
                    f"<StorageClass>STANDARD</StorageClass><LastModified>{when}</LastModified>"
                    "</Version>"
                )


def _xml(body: str) -> web.Response:
    return web.Response(
        body=b'<?xml version="1.0" encoding="UTF-8"?>\n' + body.encode(),
        content_type="application/xml",
    )


class SyntheticS3:
    """``with SyntheticS3({"bench-flat": bucket}) as server:`` serves on a free loopback port."""

    def __init__(self, buckets: dict[str, SyntheticBucket]) -> None:
        self.buckets = buckets
        self.copies = 0
        self.stored: dict[tuple[str, str], tuple[bytes, str, str]] = {}  # body, etag, version
        self.port = free_ports(1)[0]
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.path.strip("/").split("/", 1)[0]
        bucket = self.buckets.get(name)
        if bucket is None:
            return web.Response(
                status=404,
                body=b"<Error><Code>NoSuchBucket</Code><Message>no such bucket</Message></Error>",
            )
        key = request.path.lstrip("/").split("/", 1)[1] if "/" in request.path.lstrip("/") else ""
        if key and "x-amz-copy-source" not in request.headers:
            return await self._object(request, name, key)
        if request.method == "HEAD":
            return web.Response()
        if request.method == "PUT" and "x-amz-copy-source" in request.headers:
            copied = self.copies = self.copies + 1
            return web.Response(
                body=b'<?xml version="1.0" encoding="UTF-8"?>\n<CopyObjectResult>'
                b"<LastModified>"
                + LATER.encode()
                + b"</LastModified><ETag>"
                + ETAG.encode()
                + b"</ETag></CopyObjectResult>",
                headers={"x-amz-version-id": f"c{copied}"},
                content_type="application/xml",
            )
        query = request.query
        if "versioning" in query:
            return _xml(
                "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"
            )
        if query.get("list-type") == "2":
            return _xml(bucket.objects(name, query))
        if "versions" not in query:
            return web.Response(status=501, body=b"<Error><Code>NotImplemented</Code></Error>")
        prefix = query.get("prefix", "")
        max_keys = min(int(query.get("max-keys", "1000")), 1000)
        encode = query.get("encoding-type") == "url"
        page: list[str] = []
        truncated = False
        for entry in bucket.entries(
            prefix, query.get("key-marker", ""), query.get("version-id-marker", "")
        ):
            if len(page) == max_keys:
                truncated = True  # one more entry exists
                break
            page.append(entry)
        marker = ""
        if truncated:
            last = page[-1]
            key = last.split("<Key>", 1)[1].split("</Key>", 1)[0]
            vid = last.split("<VersionId>", 1)[1].split("</VersionId>", 1)[0]
            shown = urllib.parse.quote(key) if encode else key
            marker = f"<NextKeyMarker>{shown}</NextKeyMarker><NextVersionIdMarker>{vid}</NextVersionIdMarker>"
        encoding = "<EncodingType>url</EncodingType>" if encode else ""
        return _xml(
            '<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Name>{name}</Name><Prefix>{prefix}</Prefix>{encoding}{marker}"
            f"<MaxKeys>{max_keys}</MaxKeys><IsTruncated>{str(truncated).lower()}</IsTruncated>"
            + "".join(page)
            + "</ListVersionsResult>"
        )

    async def _object(self, request: web.Request, bucket: str, key: str) -> web.StreamResponse:
        """One stored object: PUT (conditional), GET, HEAD, DELETE."""
        found = self.stored.get((bucket, key))
        method = request.method
        if method == "PUT":
            wanted = request.headers.get("If-Match")
            if (request.headers.get("If-None-Match") == "*" and found is not None) or (
                wanted is not None and (found is None or f'"{found[1]}"' != wanted)
            ):
                return web.Response(
                    status=412, body=b"<Error><Code>PreconditionFailed</Code></Error>"
                )
            body = await request.read()
            etag = hashlib.md5(body).hexdigest()  # S3's ETag
            version = f"p{len(self.stored) + 1}"
            self.stored[bucket, key] = (body, etag, version)
            return web.Response(headers={"ETag": f'"{etag}"', "x-amz-version-id": version})
        if method == "DELETE":
            self.stored.pop((bucket, key), None)
            return web.Response(status=204)
        if found is None:
            body = b"" if method == "HEAD" else b"<Error><Code>NoSuchKey</Code></Error>"
            return web.Response(status=404, body=body)
        headers = {
            "ETag": f'"{found[1]}"', "x-amz-version-id": found[2],
            "Last-Modified": "Thu, 01 Jan 2026 00:00:02 GMT",
        }  # fmt: skip
        if method == "HEAD":
            return web.Response(headers={**headers, "Content-Length": str(len(found[0]))})
        return web.Response(body=found[0], headers=headers)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def __enter__(self) -> SyntheticS3:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        # handlers of kept-alive connections outlive the cleanup by a tick: end them here,
        # not as "Task was destroyed but it is pending" when the loop goes
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
