"""The base every API model shares: frozen, strict about unknown fields, camelCase on the wire."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = ["DNS_LABEL", "DNS_SUBDOMAIN", "ApiModel", "DnsLabel"]

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DnsLabel = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]


class ApiModel(BaseModel):
    """A frozen pydantic model whose wire names are camelCase (``versionLabel``).

    ``populate_by_name`` lets Python code build models with snake_case keywords while
    objects read from the API server use the aliases.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        use_enum_values=False,
        # A docstring under a field is its description: in the CRD (kubectl explain) and docs/reference.md.
        use_attribute_docstrings=True,
    )

    def to_wire(self) -> dict[str, object]:
        """JSON-ready dict with camelCase keys, leaving out fields that were never set to a value."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
