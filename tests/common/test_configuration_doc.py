"""docs/configuration.md is what common/settings_doc.py renders from the settings today, and
that rendering names every variable the settings read, with what the code says of it."""

from __future__ import annotations

import re
from typing import Annotated

import pytest
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from common import settings_doc
from common.settings import Settings


def test_the_configuration_reference_is_up_to_date() -> None:
    written = settings_doc.DOC.read_text() if settings_doc.DOC.exists() else ""
    assert written == settings_doc.render(), (
        "docs/configuration.md is out of date with common/settings.py: "
        f"run `{settings_doc.COMMAND}` and commit the result"
    )


class BlobSettings(BaseSettings):
    """Where blobs live."""

    model_config = SettingsConfigDict(env_prefix="BLOB_", extra="ignore")

    # The store's URL: s3://bucket or file:///path.
    # A second line of the same comment.
    url: str = "file:///tmp/blobs"

    retries: Annotated[int, Field(ge=0, le=9, description="Said by its description.")] = 3
    quiet: bool = False


class _Sample(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    # Which deployment this is.
    name: str | None = None
    blob: BlobSettings = Field(default_factory=BlobSettings)


def test_a_setting_is_described_by_its_comment_or_its_description() -> None:
    rendered = settings_doc.render(_Sample)
    assert "## General" in rendered
    assert "- **`NAME`**: string, optional, default unset.\n  Which deployment this is." in rendered
    assert "## Blob (`BLOB_*`)\n\nWhere blobs live." in rendered
    assert (
        "- **`BLOB_URL`**: string, default `file:///tmp/blobs`.\n"
        "  The store's URL: s3://bucket or file:///path. A second line of the same comment."
    ) in rendered
    assert (
        "- **`BLOB_RETRIES`**: integer (≥ 0, ≤ 9), default `3`.\n  Said by its description."
    ) in rendered
    # No comment: no description line, and the next entry follows at once.
    assert "- **`BLOB_QUIET`**: boolean, default `false`.\n" in rendered


def _variables() -> list[tuple[type[BaseSettings], str, str]]:
    """Each section of Settings, a field of it that holds a number, and the variable the
    reference names for it."""
    rendered = settings_doc.render()
    named = set(re.findall(r"^- \*\*`([A-Z0-9_]+)`\*\*", rendered, flags=re.MULTILINE))
    found = []
    for field in Settings.model_fields.values():
        section = field.annotation
        if not (isinstance(section, type) and issubclass(section, BaseSettings)):
            continue
        prefix = str(section.model_config.get("env_prefix") or "")
        for name, inner in section.model_fields.items():
            variable = (prefix + name).upper()
            assert variable in named, f"{variable} is missing from the reference"
            if inner.annotation in (int, float):
                found.append((section, name, variable))
    return found


@pytest.mark.parametrize(("section", "name", "variable"), _variables())
def test_the_reference_names_the_variable_each_setting_reads(
    monkeypatch: pytest.MonkeyPatch, section: type[BaseSettings], name: str, variable: str
) -> None:
    monkeypatch.setenv(variable, "not a number")
    with pytest.raises(ValidationError) as refused:
        section()
    assert [e["loc"] for e in refused.value.errors()] == [(name,)]
