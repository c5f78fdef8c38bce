"""What a request costs: input, cached input, output and thinking tokens, the long-context tier."""

from __future__ import annotations

import pytest

from worker_llm_client.core.cost import add_cost, request_cost
from worker_llm_client.execution_models import LongContextPricing, Pricing, Usage

FLASH = Pricing(input_per_mtok=0.30, output_per_mtok=2.50, as_of="2026-11-20", cached_input_per_mtok=0.075)
PRO = Pricing(1.25, 10.0, "2026-11-20", None, LongContextPricing(200_000, 2.50, 15.0))


@pytest.mark.parametrize(
    ("usage", "pricing", "cost"),
    [
        pytest.param(Usage(1_000_000, 0, 0, 0, 1_000_000), FLASH, 0.30, id="input"),
        pytest.param(Usage(0, 1_000_000, 0, 0, 1_000_000), FLASH, 2.50, id="output"),
        pytest.param(Usage(0, 0, 1_000_000, 0, 1_000_000), FLASH, 2.50, id="thinking-at-the-output-rate"),
        pytest.param(Usage(1_000_000, 0, 0, 400_000, 1_000_000), FLASH, 0.6 * 0.30 + 0.4 * 0.075, id="cached-part"),
        pytest.param(Usage(100_000, 0, 0, 40_000, 100_000), PRO, 0.125, id="cached-at-input-rate-when-unpriced"),
        pytest.param(Usage(100, 0, 0, 500, 100), FLASH, 100 * 0.075 / 1e6, id="cached-never-above-prompt"),
        pytest.param(
            Usage(200_000, 1_000, 0, 0, 201_000), PRO, (200_000 * 1.25 + 1_000 * 10.0) / 1e6, id="at-threshold"
        ),
        pytest.param(
            Usage(200_001, 1_000, 0, 0, 201_001), PRO, (200_001 * 2.5 + 1_000 * 15.0) / 1e6, id="above-whole-request"
        ),
        pytest.param(Usage(10, 5, 2, 0, 17), None, None, id="unpriced"),
        pytest.param(Usage(), FLASH, 0.0, id="nothing-answered"),
    ],
)
def test_a_request_costs_its_tokens_at_the_profiles_rates(
    usage: Usage, pricing: Pricing | None, cost: float | None
) -> None:
    assert request_cost(usage, pricing) == (None if cost is None else pytest.approx(cost, abs=1e-9))


def test_costs_add_up_and_stay_unknown_only_while_nothing_was_priced() -> None:
    assert add_cost(None, None) is None
    assert add_cost(None, 0.25) == 0.25
    assert add_cost(0.1, 0.2) == 0.3  # rounded: no float noise on the step
    assert add_cost(0.5, None) == 0.5
