"""Option sets shared by several commands, and converters from text to our types."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..errors import UsageError
from ..model import S3Url, folder
from ..units import parse_size

F = TypeVar("F", bound=Callable[..., Any])


class S3UrlType(click.ParamType):  # type: ignore[type-arg]  # generic only in click>=8.2
    name = "S3URL"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> S3Url:
        if isinstance(value, S3Url):
            return value
        try:
            return S3Url.parse(str(value))
        except UsageError as exc:
            self.fail(exc.message, param, ctx)


class SizeType(click.ParamType):  # type: ignore[type-arg]
    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            return parse_size(value)
        except UsageError as exc:
            self.fail(exc.message, param, ctx)


class FolderType(click.ParamType):  # type: ignore[type-arg]
    """A relative prefix, read as a folder: ``docs`` means ``docs/`` (model.folder)."""

    name = "PREFIX"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        return folder(str(value))


S3URL = S3UrlType()
SIZE = SizeType()
FOLDER = FolderType()


def _compose(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(f: F) -> F:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return apply


def source_option(required: bool = True) -> Callable[[F], F]:
    return click.option(
        "--source",
        type=S3URL,
        required=required,
        help="The bucket to back up: s3://bucket[/folder] (s3://b/app1 means app1/).",
    )


def backup_option(required: bool = True) -> Callable[[F], F]:
    return click.option(
        "--backup",
        type=S3URL,
        required=required,
        help="The versioned backup bucket: s3://bucket[/folder].",
    )


dry_run_option = click.option(
    "--dry-run",
    is_flag=True,
    help="Print every planned copy and delete, then the totals; change nothing.",
)


def prefix_option(text: str) -> Callable[[F], F]:
    return click.option("--prefix", type=FOLDER, default="", help=text)


def yes_option(text: str) -> Callable[[F], F]:
    return click.option("--yes", is_flag=True, help=text)


filter_options = _compose(
    click.option(
        "--include", multiple=True, metavar="GLOB", help="Only keys matching GLOB (repeatable)."
    ),
    click.option(
        "--exclude", multiple=True, metavar="GLOB", help="Skip keys matching GLOB (repeatable)."
    ),
)

compare_tags_option = click.option(
    "--compare-tags",
    is_flag=True,
    help="Also compare the tags of every key whose content is unchanged (2 GetObjectTagging "
    "requests per key). Without it a change of tags alone goes unnoticed: it does not move "
    "LastModified. Changes of headers or metadata are noticed either way.",
)

sync_options = _compose(
    source_option(),
    backup_option(),
    dry_run_option,
    filter_options,
    click.option(
        "--multipart-threshold",
        type=SIZE,
        default="5GiB",
        show_default=True,
        help="Copy objects at least this large in parallel parts (UploadPartCopy).",
    ),
    compare_tags_option,
)

snapshot_options = _compose(
    click.option(
        "--at",
        metavar="TIME",
        help="The instant to capture (ISO 8601 with a zone, or 2h, 3d ago); default: now.",
    ),
    click.option("--tag", "tags", multiple=True, metavar="TEXT", help="A label (repeatable)."),
)
