"""An order as kefu shows it (SPEC "The shop": the Order object), and a customer's totals."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

ORDER_NO_MAX, TITLE_MAX = 150, 500  # dujiaoka's order_sn is a varchar(150)
OrderStatus = Literal["pending", "paid", "delivered", "failed", "expired", "refunded"]
# Statuses in which the customer has paid: they count towards order count and spend.
PAID_STATUSES: frozenset[str] = frozenset({"paid", "delivered"})


def _id_text(v: Any) -> Any:
    """Shops written in PHP often send ids as JSON numbers; an id is text either way."""
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


Text = Annotated[str, Field(strict=True, min_length=1, max_length=200)]
Id = Annotated[str, BeforeValidator(_id_text), Field(strict=True, min_length=1, max_length=200)]
Time = Annotated[AwareDatetime, Field(strict=True)]  # ISO 8601 with an offset; no bare unix numbers


class Order(BaseModel):
    """One order.  Built from a shop's JSON answer (validated: anything off the contract
    is refused) or from a shop's database row.  `paid_at` / `delivered_at` are extras a
    shop may send (SPEC: add freely) and that the dujiaoka adapter fills when it can tell."""
    model_config = ConfigDict(extra="ignore", frozen=True)

    order_no: Annotated[str, Field(strict=True, min_length=1, max_length=ORDER_NO_MAX)]
    status: OrderStatus
    title: Annotated[str, Field(strict=True, max_length=TITLE_MAX)]
    amount: Annotated[float, Field(strict=True, ge=0)]  # a JSON number; "12.50" as text is off-contract
    currency: Annotated[str, Field(strict=True, min_length=1, max_length=16)]
    created_at: Time
    contact: Text | None = None
    customer_id: Id | None = None
    paid_at: Time | None = None
    delivered_at: Time | None = None

    def public(self) -> dict[str, Any]:
        """The SPEC's JSON shape: times as ISO 8601 with their offset, absent fields left out."""
        out: dict[str, Any] = {"order_no": self.order_no, "status": self.status, "title": self.title,
                               "amount": self.amount, "currency": self.currency,
                               "created_at": self.created_at.isoformat()}
        for name in ("contact", "customer_id"):
            if (value := getattr(self, name)) is not None:
                out[name] = value
        for name in ("paid_at", "delivered_at"):
            if (value := getattr(self, name)) is not None:
                out[name] = value.isoformat()
        return out


@dataclass(frozen=True, slots=True)
class Profile:
    """What the shop knows of a customer's buying, for the tier (new / regular / VIP).

    Counts only orders that were paid (paid or delivered); `last_order_at` is the newest
    of those, None when there is none."""
    order_count: int
    total_spent: float
    currency: str
    last_order_at: datetime | None

    @classmethod
    def of(cls, orders: list[Order], currency: str) -> Profile:
        paid = [o for o in orders if o.status in PAID_STATUSES]
        return cls(order_count=len(paid), total_spent=round(sum(o.amount for o in paid), 2),
                   currency=paid[0].currency if paid else currency,
                   last_order_at=max((o.created_at for o in paid), default=None))
