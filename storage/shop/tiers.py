"""Customer tier (new / regular / VIP) from order count and spend (SPEC "Routing").

The thresholds are config.yaml's `tiers:` section (aggregator/config.py composes
TiersConfig); they live here so that everything below the aggregator can use them."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from storage.shop.order import Profile

Tier = Literal["new", "regular", "vip"]


class TierThreshold(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_orders: int = Field(0, ge=0)  # reached when order_count ≥ min_orders ...
    min_spent: float = Field(0, ge=0)  # ... or total_spent ≥ min_spent (whichever is set > 0)

    def reached(self, order_count: int, total_spent: float) -> bool:
        return ((self.min_orders > 0 and order_count >= self.min_orders)
                or (self.min_spent > 0 and total_spent >= self.min_spent))


class TiersConfig(BaseModel):
    """Customer tier from the shop's profile, or from attributes a channel passes (order_count, total_spent)."""
    model_config = ConfigDict(extra="forbid")
    regular: TierThreshold = TierThreshold(min_orders=2)
    vip: TierThreshold = TierThreshold(min_orders=20, min_spent=2000)
    vip_customers: list[str] = []  # "channel:customer_id", always VIP

    def tier_for(self, order_count: int, total_spent: float) -> Tier:
        if self.vip.reached(order_count, total_spent):
            return "vip"
        return "regular" if self.regular.reached(order_count, total_spent) else "new"


def tier(profile: Profile, tiers: TiersConfig) -> Tier:
    """The tier a shop profile earns (spend compared in the shop's own currency)."""
    return tiers.tier_for(profile.order_count, profile.total_spent)
