"""What a customer tells us when they start a session.

The limits follow what the leading consoles accept from their intake forms
and start APIs: 100 characters for a name, about a kilobyte of details,
10 KB of custom fields in all.  Anything larger is refused with a reason
rather than cut, so that nothing the customer wrote is silently lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from repconsole.core.errors import CommandError, Reason
from repconsole.protocol.vocabulary import CUSTOM_FIELDS_LIMIT, DETAILS_LIMIT, NAME_LIMIT, Priority

__all__ = ["CUSTOM_FIELDS_LIMIT", "DETAILS_LIMIT", "NAME_LIMIT", "Intake"]

_SHORT_FIELDS = ("customer_name", "company", "company_code", "platform", "locale", "external_key", "portal")


@dataclass(slots=True)
class Intake:
    customer_name: str
    company: str = ""
    company_code: str = ""
    details: str = ""
    platform: str = ""
    locale: str = ""
    external_key: str = ""
    portal: str = ""
    custom_fields: dict[str, str] = field(default_factory=dict)
    priority: Priority = Priority.NORMAL

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for name in _SHORT_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, str):
                raise CommandError(Reason.INVALID, f"{name} must be text", field=name)
            if len(value) > NAME_LIMIT:
                raise CommandError(Reason.INVALID, f"{name} is longer than {NAME_LIMIT} characters", field=name)
        self.customer_name = self.customer_name.strip()
        if not self.customer_name:
            raise CommandError(Reason.INVALID, "customer_name is required", field="customer_name")
        if not isinstance(self.details, str) or len(self.details) > DETAILS_LIMIT:
            raise CommandError(Reason.INVALID, f"details must be text of at most {DETAILS_LIMIT} characters", field="details")
        if not isinstance(self.custom_fields, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.custom_fields.items()
        ):
            raise CommandError(Reason.INVALID, "custom_fields must map text to text", field="custom_fields")
        size = sum(len(k) + len(v) for k, v in self.custom_fields.items())
        if size > CUSTOM_FIELDS_LIMIT:
            raise CommandError(Reason.INVALID, f"custom_fields exceed {CUSTOM_FIELDS_LIMIT} characters", field="custom_fields")
        try:
            self.priority = Priority(self.priority)
        except ValueError:
            raise CommandError(Reason.INVALID, f"unknown priority {self.priority!r}", field="priority") from None

    @classmethod
    def from_dict(cls, d: Any) -> Intake:
        if not isinstance(d, dict):
            raise CommandError(Reason.INVALID, "intake must be an object")
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise CommandError(Reason.INVALID, f"unknown intake fields: {', '.join(sorted(unknown))}")
        if "customer_name" not in d:
            raise CommandError(Reason.INVALID, "customer_name is required", field="customer_name")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {
            "priority": int(self.priority),
            "custom_fields": dict(self.custom_fields),
        }
